import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Logging
import NIOCore
import Onyx
import Testing
@testable import OnyxServe
#if canImport(Glibc)
import Glibc
#endif

/// Hostile requests and clients against the whole server: what the decoder tests cannot see
/// (routing, validation against the model) through `.router`, and what only a socket can do
/// (stalling mid-body, declaring a huge body, holding connections) against a live server on an
/// ephemeral port. The server must answer 4xx or close the connection, and keep serving.
@Suite(.serialized) struct HostileConnectionTests {
    static func liveApp(_ configuration: ServerConfiguration) async throws -> some ApplicationProtocol {
        var configuration = configuration
        configuration.host = "127.0.0.1"
        configuration.port = 0
        return buildApplication(repository: try await ServerTests.repository(), configuration: configuration)
    }

    static let validInfer = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[\(Array(repeating: "0.5", count: 64).joined(separator: ","))]}]}"

    // MARK: - Through the router

    @Test func requestsTheModelCannotTakeGet400() async throws {
        let input: @Sendable (String, String, String) -> String = { shape, data, type in
            "{\"name\":\"input\",\"datatype\":\"\(type)\",\"shape\":\(shape),\"data\":\(data)}"
        }
        let ones = "[\(Array(repeating: "1", count: 64).joined(separator: ","))]"
        let cases: [(String, String, [HTTPField.Name: String], String)] = [
            ("/v2/models/mlp/infer", "{\"inputs\":[\(input("[64]", ones, "FP32"))]}", [:], "has shape [64], the model expects [-1, 64]"),
            ("/v2/models/mlp/infer", "{\"inputs\":[\(input("[1,1,64]", ones, "FP32"))]}", [:], "has shape [1, 1, 64]"),
            ("/v2/models/mlp/infer", "{\"inputs\":[\(input("[1,64]", ones, "FP32")),\(input("[1,64]", ones, "FP32"))]}", [:], "given twice"),
            ("/predictions/mlp", "[]", [:], "missing input 'input'"),
            ("/v2/models/mlp/infer", "{\"inputs\":[\(input("[1,64]", "[NaN\(String(repeating: ",1", count: 63))]", "INT64"))]}", [:], "must be integers"),
            ("/v2/models/mlp/infer", "{\"inputs\":[\(input("[1,64]", "[Infinity\(String(repeating: ",1", count: 63))]", "BOOL"))]}", [:], "true/false"),
            ("/v2/models/mlp/infer", "{\"inputs\":[\(input("[1,NaN]", ones, "FP32"))]}", [:], "non-negative integers"),
            ("/v2/models/mlp/infer", Self.validInfer, [Responses.headerLengthField: "12ab"], "non-negative integer, got '12ab'"),
            ("/v2/models/mlp/infer", Self.validInfer, [Responses.headerLengthField: "-1"], "non-negative integer, got '-1'"),
            ("/v2/models/mlp/infer", Self.validInfer, [Responses.headerLengthField: "99999999999999999999"], "non-negative integer"),
        ]
        let app = ServerTests.app(try await ServerTests.repository())
        try await app.test(.router) { client in
            for (uri, text, headers, message) in cases {
                try await client.execute(uri: uri, method: .post, headers: HTTPFields(headers.map { HTTPField(name: $0.key, value: $0.value) }),
                                         body: ServerTests.body(text)) { response throws in
                    #expect(response.status == .badRequest, "\(text.prefix(80))")
                    let error = try ServerTests.json(response.body)["error"]?.stringValue ?? ""
                    #expect(error.contains(message), "\(text.prefix(80)): \(error)")
                }
            }
            // NaN and infinities are values like any other in a float tensor.
            let nan = "{\"inputs\":[\(input("[1,64]", "[NaN,-Infinity\(String(repeating: ",0.5", count: 62))]", "FP32"))]}"
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post, body: ServerTests.body(nan)) { #expect($0.status == .ok) }
        }
    }

    // MARK: - Live sockets

    @Test func declaredOversizedBodyGets413BeforeItIsSent() async throws {
        let app = try await Self.liveApp(ServerConfiguration(maxBodyBytes: 4096))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // Only the head goes out: the 413 must come without the server waiting for 10 MB.
            let received = try await RawConnection.exchange(port: port, Array(
                "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n".utf8))
            #expect(received.status == 413, "\(received)")
            #expect(received.body.contains("larger than the limit of 4096 bytes"), "\(received)")
        }
    }

    @Test func chunkedBodyPastTheLimitGets413() async throws {
        let app = try await Self.liveApp(ServerConfiguration(maxBodyBytes: 4096))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let chunk = String(repeating: " ", count: 2048)
            let chunks = String(repeating: "800\r\n\(chunk)\r\n", count: 4) + "0\r\n\r\n"
            let received = try await RawConnection.exchange(port: port, Array(
                "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\(chunks)".utf8))
            #expect(received.status == 413, "\(received)")
            // And the server still serves.
            try await client.execute(uri: "/v2/models/mlp/infer", method: .post, body: ServerTests.body(Self.validInfer)) {
                #expect($0.status == .ok)
            }
        }
    }

    @Test func clientStalledMidBodyIsClosedByTheIdleTimeout() async throws {
        let app = try await Self.liveApp(ServerConfiguration(idleTimeoutSeconds: 1))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // Declares 4096 bytes, sends 11, then waits: without a timeout this would hang for 30 s.
            let received = try await RawConnection.exchange(port: port, Array(
                "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n{\"inputs\":[".utf8), timeoutSeconds: 30)
            #expect(received.outcome == .closed || received.status == 408, "\(received)")
            // Nor does a client that connects and sends nothing keep its connection.
            let silent = try await RawConnection.exchange(port: port, [], timeoutSeconds: 30)
            #expect(silent.outcome == .closed, "\(silent)")
        }
    }

    /// Runs the server exactly as `onyx serve` builds it on an ephemeral port. (HummingbirdTesting's
    /// `.live` rebuilds the application configuration with a new address and drops the connection
    /// limit on the way, so it cannot test that.)
    static func withServer(
        _ configuration: ServerConfiguration, repository: ModelRepository? = nil, eventLoopGroup: (any EventLoopGroup)? = nil,
        onServerRunning: @escaping @Sendable (any Channel) -> Void = { _ in }, _ body: @Sendable (Int) async throws -> Void
    ) async throws {
        var configuration = configuration
        configuration.host = "127.0.0.1"
        configuration.port = 0
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        // Stopping by cancellation makes the server log a harmless "Already closed" at error level.
        var logger = Logger(label: "onyx.test")
        logger.logLevel = .critical
        let models = if let repository { repository } else { try await ServerTests.repository() }
        let app = buildApplication(repository: models, configuration: configuration, logger: logger, eventLoopGroup: eventLoopGroup) {
            channel in
            onServerRunning(channel)
            continuation.yield(channel.localAddress?.port ?? 0)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            defer { group.cancelAll() }
            try await body(port)
        }
    }

    @Test func connectionsPastTheLimitWaitUntilOneCloses() async throws {
        try await Self.withServer(ServerConfiguration(idleTimeoutSeconds: 60, maxConnections: 2)) { port in
            let health = Array("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            // Open connections one by one, each kept open after its answer, until one is not
            // accepted: the third; without the limit all four would be served.
            var served: [RawConnection] = []
            var waiting: RawConnection?
            for _ in 0..<4 {
                let connection = try RawConnection(port: port)
                let received = await connection.exchange(health, timeoutSeconds: 10)
                if received.outcome == .timedOut {
                    waiting = connection
                    break
                }
                #expect(received.status == 200, "\(received)")
                served.append(connection)
            }
            defer { for connection in served + [waiting].compactMap({ $0 }) { connection.close() } }
            let third = try #require(waiting, "\(served.count) connections served with --max-connections 2")
            #expect(served.count == 2)
            // The waiting connection is served once another one closes.
            let first = try #require(served.first, "the first connection was not served")
            first.close()
            let late = await third.exchange([], timeoutSeconds: 30)
            #expect(late.status == 200, "\(late)")
        }
    }
}

/// A blocking TCP client on 127.0.0.1 for what HTTP clients will not send. Every blocking call runs
/// on a thread of its own, so a test waiting on the server never holds a thread the server needs.
final class RawConnection: @unchecked Sendable {
    enum Outcome: Equatable { case response, closed, timedOut }

    struct Received: CustomStringConvertible {
        var outcome: Outcome
        var status: Int?
        var body: String
        var description: String { "\(outcome) \(status.map(String.init) ?? "-") \(body.prefix(200))" }
    }

    struct SocketError: Error, CustomStringConvertible {
        let description: String
    }

    private let descriptor: Int32
    private var isOpen = true
    private let lock = NSLock()

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError(description: "socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            Glibc.close(descriptor)
            throw SocketError(description: "connect() to port \(port) failed: errno \(errno)")
        }
    }

    deinit { close() }

    func close() {
        lock.withLock {
            if isOpen { Glibc.close(descriptor) }
            isOpen = false
        }
    }

    /// One connection: sends `bytes`, waits for one response.
    static func exchange(port: Int, _ bytes: [UInt8], timeoutSeconds: Int = 30) async throws -> Received {
        let connection = try RawConnection(port: port)
        defer { connection.close() }
        return await connection.exchange(bytes, timeoutSeconds: timeoutSeconds)
    }

    /// Sends `bytes` (possibly none), then reads until a whole response has arrived, the server
    /// closes the connection, or nothing arrives for `timeoutSeconds`.
    func exchange(_ bytes: [UInt8], timeoutSeconds: Int = 30) async -> Received {
        await exchange(bytes, responses: 1, timeoutSeconds: timeoutSeconds)[0]
    }

    /// Sends `bytes` (pipelined requests, say), then reads `count` responses in the order they
    /// come; the last one tells how reading ended if fewer arrived.
    func exchange(_ bytes: [UInt8], responses count: Int, timeoutSeconds: Int = 30) async -> [Received] {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: self.blockingExchange(bytes, responses: count, timeoutSeconds: timeoutSeconds))
            }
        }
    }

    private func blockingExchange(_ bytes: [UInt8], responses count: Int, timeoutSeconds: Int) -> [Received] {
        var received: [Received] = []
        var data: [UInt8] = []
        while received.count < count {
            let next = blockingRead(bytes: received.isEmpty ? bytes : [], data: &data, timeoutSeconds: timeoutSeconds)
            received.append(next)
            if next.outcome != .response { break }
        }
        return received
    }

    private func blockingRead(bytes: [UInt8], data: inout [UInt8], timeoutSeconds: Int) -> Received {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return Received(outcome: .closed, status: nil, body: "send failed: errno \(errno)") }
            sent += n
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let response = Self.response(consumingFrom: &data) { return response }
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                data += buffer[0..<n]
            } else if n == 0 || errno == ECONNRESET {
                return Self.response(consumingFrom: &data) ?? Received(outcome: .closed, status: nil, body: String(decoding: data, as: UTF8.self))
            } else {
                return Received(outcome: .timedOut, status: nil, body: String(decoding: data, as: UTF8.self))
            }
        }
    }

    /// The complete response at the start of `data`, if there is one, removed from it.
    private static func response(consumingFrom data: inout [UInt8]) -> Received? {
        guard let (response, length) = response(in: data) else { return nil }
        data.removeFirst(length)
        return response
    }

    /// A complete response (head and `Content-Length` body) at the start of `data` and its length in bytes, if there is one.
    private static func response(in data: [UInt8]) -> (Received, Int)? {
        let separator = Array("\r\n\r\n".utf8)
        guard let end = data.indices.dropLast(3).first(where: { data[$0..<$0 + 4].elementsEqual(separator) }) else { return nil }
        let lines = String(decoding: data[..<end], as: UTF8.self).split(separator: "\r\n")
        guard let statusLine = lines.first, let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        let length = lines.dropFirst().compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first ?? 0
        let body = data[(end + 4)...]
        guard body.count >= length else { return nil }
        return (Received(outcome: .response, status: status, body: String(decoding: body.prefix(length), as: UTF8.self)), end + 4 + length)
    }
}
