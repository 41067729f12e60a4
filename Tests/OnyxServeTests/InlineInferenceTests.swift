import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import NIOConcurrencyHelpers
import Onyx
import Testing
@testable import OnyxServe

/// The event-loop path for small models (``InlineInferenceHandler``): which requests it answers,
/// that its answers are the router's byte for byte, and that everything else, and the order of
/// pipelined responses, is left to the router.
@Suite struct InlineInferenceTests {
    static func channel(_ configuration: ServerConfiguration = ServerConfiguration()) async throws -> EmbeddedChannel {
        try await channel(repository: try await ServerTests.repository(), configuration)
    }

    /// The inline handler with the writer of its answers in front, as in the server's pipeline
    /// (without the HTTP/1 decoder and encoder around them: parts go in, the answers' bytes and
    /// the router's parts come out), active as a server's accepted connection is.
    static func channel(repository: ModelRepository, _ configuration: ServerConfiguration = ServerConfiguration()) async throws -> EmbeddedChannel {
        let writer = EncodedResponseWriter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(
            writer, InlineInferenceHandler(repository: repository, configuration: configuration, writer: writer))
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return channel
    }

    /// What the router writes at the end of its answer; the handler passes it on.
    static func routerFinishes(_ channel: EmbeddedChannel) throws {
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == .end(nil))
    }

    static func post(_ path: String, _ body: ByteBuffer, headers: HTTPHeaders = [:], declareLength: Bool = true) -> [HTTPServerRequestPart] {
        var fields = headers
        fields.add(name: "host", value: "x")
        if declareLength { fields.add(name: "content-length", value: String(body.readableBytes)) }
        return [.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: fields)), .body(body), .end(nil)]
    }

    static func get(_ path: String) -> [HTTPServerRequestPart] {
        [.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: ["host": "x"])), .end(nil)]
    }

    /// An answer the handler wrote, parsed from its bytes.
    struct Answer {
        var status: Int
        var headers: [String: String]  // lowercased names
        var body: [UInt8]
    }

    static func response(from channel: EmbeddedChannel) throws -> Answer? {
        guard case .byteBuffer(let buffer)? = try channel.readOutbound(as: IOData.self) else { return nil }
        let bytes = Array(buffer.readableBytesView)
        let separator = Array("\r\n\r\n".utf8)
        guard let end = (0...(bytes.count - separator.count)).first(where: { bytes[$0..<$0 + separator.count].elementsEqual(separator) }) else {
            Issue.record("no end of the head in \(String(decoding: bytes, as: UTF8.self))")
            return nil
        }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ")
        #expect(statusLine[0] == "HTTP/1.1")
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            let (name, value) = (line.prefix { $0 != ":" }, line.drop { $0 != ":" }.dropFirst().drop { $0 == " " })
            headers[name.lowercased()] = String(value)
        }
        let body = Array(bytes[(end + separator.count)...])
        #expect(headers["content-length"] == String(body.count))
        return Answer(status: Int(statusLine[1]) ?? 0, headers: headers, body: body)
    }

    static var validBody: ByteBuffer { ByteBuffer(string: HostileConnectionTests.validInfer) }

    @Test func onlyInferPathsAreTargets() {
        #expect(InlineInferenceHandler.inferTarget("/v2/models/mlp/infer")! == ("mlp", nil))
        #expect(InlineInferenceHandler.inferTarget("/v2/models/mlp/versions/3/infer?x=1")! == ("mlp", "3"))
        for path in ["/v2/models/mlp", "/v2/models//infer", "/v2/models/mlp/versions//infer", "/v2/models/a/b/infer",
                     "/v2/models/m%6Cp/infer", "/predictions/mlp", "/v2/models/mlp/infer/", "/v2/models/mlp/ready"] {
            #expect(InlineInferenceHandler.inferTarget(path) == nil, "\(path)")
        }
    }

    @Test func answersAnInlineModelsInferRequestsAsTheRouterDoes() async throws {
        let repository = try await ServerTests.repository()
        let channel = try await Self.channel(repository: repository)
        let x = try ServerTests.fixtureTensor("mlp_legacy/test_data_set_0/input_0.pb")
        let header = "{\"id\":\"b\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,64],\"parameters\":{\"binary_data_size\":\(x.byteCount)}}],"
            + "\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":true}}]}"
        var binary = ByteBuffer(string: header)
        x.withUnsafeBytes { binary.writeBytes($0) }
        let lengthField = HTTPFields([HTTPField(name: Responses.headerLengthField, value: String(header.utf8.count))])
        let badLengthField = HTTPFields([HTTPField(name: Responses.headerLengthField, value: "-1")])
        let cases: [(String, ByteBuffer, HTTPFields)] = [
            ("/v2/models/mlp/infer", try ServerTests.inferBody(x), [:]),
            ("/v2/models/mlp/infer", binary, lengthField),
            ("/v2/models/mlp/infer", Self.validBody, badLengthField),
            ("/v2/models/lenet/versions/3/infer", Self.validBody, [:]),  // wrong input name and shape: 400
            ("/v2/models/mlp/infer", ByteBuffer(string: "{\"inputs\":"), [:]),
            ("/v2/models/mlp/infer", ByteBuffer(string: "{\"inputs\":[],\"outputs\":[{\"name\":\"nope\"}]}"), [:]),
        ]
        let router = ServerTests.app(repository)
        for (path, body, headers) in cases {
            let http1Headers = HTTPHeaders(headers.map { ($0.name.rawName, $0.value) })
            for part in Self.post(path, body, headers: http1Headers) { try channel.writeInbound(part) }
            #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil, "\(path) went to the router")
            let answer = try #require(try Self.response(from: channel))
            #expect(answer.headers["server"] == "onyx")
            #expect(answer.headers["connection"] == nil)
            try await router.test(.router) { client in
                try await client.execute(uri: path, method: .post, headers: headers, body: body) { routed in
                    #expect(answer.status == Int(routed.status.code), "\(path)")
                    #expect(answer.body == Array(routed.body.readableBytesView), "\(path): \(String(decoding: answer.body, as: UTF8.self).prefix(120))")
                    #expect(answer.headers[Responses.headerLengthField.canonicalName] == routed.headers[Responses.headerLengthField])
                    #expect(answer.headers["content-type"] == routed.headers[.contentType])
                }
            }
        }
        #expect(channel.isActive)
    }

    /// `onyx serve --http-threads N`: connections, and the models answered inline on them, run on
    /// the group given, not on NIO's shared one.
    @Test func servesOnTheEventLoopGroupItIsGiven() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let listening = NIOLockedValueBox<(any EventLoop)?>(nil)
        try await HostileConnectionTests.withServer(ServerConfiguration(), eventLoopGroup: group, onServerRunning: { channel in
            listening.withLockedValue { $0 = channel.eventLoop }
        }) { port in
            let body = String(buffer: try ServerTests.inferBody(try ServerTests.fixtureTensor("mlp_legacy/test_data_set_0/input_0.pb")))
            let request = "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
            let answer = try await RawConnection.exchange(port: port, Array(request.utf8))
            #expect(answer.status == 200, "\(answer)")
            #expect(answer.body.contains("\"output\""), "\(answer)")
        }
        #expect(listening.withLockedValue { $0 } === loop)
        try await group.shutdownGracefully()
    }

    @Test func leavesEveryOtherRequestToTheRouter() async throws {
        let channel = try await Self.channel(ServerConfiguration(maxBodyBytes: 100))
        let requests: [[HTTPServerRequestPart]] = [
            Self.get("/v2/models/mlp"),
            Self.post("/v2/models/unknown/infer", Self.validBody),
            Self.post("/predictions/mlp", Self.validBody),
            Self.post("/v2/models/mlp/infer", Self.validBody),  // declares more than the 100-byte limit: the router's 413
        ]
        for parts in requests {
            for part in parts { try channel.writeInbound(part) }
            for part in parts { #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == part) }
            #expect(try channel.readOutbound(as: IOData.self) == nil)
            try Self.routerFinishes(channel)  // so the next request may be taken here
        }
    }

    @Test func pipelinedRequestsKeepTheirOrder() async throws {
        let channel = try await Self.channel()
        // A routed request whose answer has not been written yet: the infer request after it must
        // wait for the router too, or its answer would overtake.
        for part in Self.get("/v2/models/mlp") { try channel.writeInbound(part) }
        let infer = Self.post("/v2/models/mlp/infer", Self.validBody)
        for part in infer { try channel.writeInbound(part) }
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) != nil)  // the GET's head
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == .end(nil))
        for part in infer { #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == part) }
        try Self.routerFinishes(channel)
        try Self.routerFinishes(channel)
        // Both answered: the next one is taken here.
        for part in infer { try channel.writeInbound(part) }
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil)
        #expect(try Self.response(from: channel)?.status == 200)
    }

    /// Inline answers count against the model's instance count: with its one instance taken, a
    /// request goes to the router (and its batcher's queue); a connection that closes mid-body
    /// gives its reservation back.
    @Test func inlineAnswersTakeOneOfTheModelsInstances() async throws {
        let repository = try await ServerTests.repository(ModelConfiguration(instanceCount: 1))
        let model = try repository.model("mlp")
        let channel = try await Self.channel(repository: repository)
        let infer = Self.post("/v2/models/mlp/infer", Self.validBody)

        #expect(model.reserveInline())  // another connection's answer under way
        #expect(!model.reserveInline())
        for part in infer { try channel.writeInbound(part) }
        for part in infer { #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == part) }
        try Self.routerFinishes(channel)
        model.releaseInline()

        for part in infer { try channel.writeInbound(part) }
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil)
        #expect(try Self.response(from: channel)?.status == 200)
        #expect(model.reserveInline(), "the answer gave its reservation back")
        model.releaseInline()

        // Head and part of the body, then the connection goes.
        try channel.writeInbound(infer[0])
        #expect(!model.reserveInline())
        try await channel.close()
        #expect(model.reserveInline(), "the closed connection gave its reservation back")
        model.releaseInline()
    }

    @Test func chunkedBodyPastTheLimitGets413AndTheConnectionCloses() async throws {
        let channel = try await Self.channel(ServerConfiguration(maxBodyBytes: 100))
        let parts = Self.post("/v2/models/mlp/infer", Self.validBody, declareLength: false)
        for part in parts { try channel.writeInbound(part) }
        let answer = try #require(try Self.response(from: channel))
        #expect(answer.status == 413)
        #expect(answer.headers["connection"] == "close")
        #expect(String(decoding: answer.body, as: UTF8.self).contains("larger than the limit of 100 bytes"))
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil)
        #expect(!channel.isActive)
    }

    @Test func connectionCloseIsHonoured() async throws {
        let channel = try await Self.channel()
        for part in Self.post("/v2/models/mlp/infer", Self.validBody, headers: ["connection": "close"]) { try channel.writeInbound(part) }
        let answer = try #require(try Self.response(from: channel))
        #expect(answer.status == 200)
        #expect(answer.headers["connection"] == "close")
        #expect(!channel.isActive)
    }

    /// A graceful shutdown that arrives mid-request lets the answer be written, then closes.
    @Test func gracefulShutdownWaitsForTheAnswerUnderWay() async throws {
        let channel = try await Self.channel()
        let infer = Self.post("/v2/models/mlp/infer", Self.validBody)
        try channel.writeInbound(infer[0])
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(channel.isActive)
        try channel.writeInbound(infer[1])
        try channel.writeInbound(infer[2])
        let answer = try #require(try Self.response(from: channel))
        #expect(answer.status == 200)
        #expect(answer.headers["connection"] == "close")
        #expect(!channel.isActive)
    }

    /// The connection's idle timeout, kept here for inline and routed requests alike: traffic
    /// answered here keeps it open, a stall closes it.
    @Test func idleTimeoutCountsEveryRequest() async throws {
        let channel = try await Self.channel(ServerConfiguration(idleTimeoutSeconds: 2))
        let loop = channel.embeddedEventLoop
        for _ in 0..<3 {
            loop.advanceTime(by: .milliseconds(1500))
            for part in Self.post("/v2/models/mlp/infer", Self.validBody) { try channel.writeInbound(part) }
            #expect(try Self.response(from: channel)?.status == 200)
        }
        #expect(channel.isActive, "4.5 s of requests, never 2 s apart")
        // A routed request still being answered is not idle time.
        for part in Self.get("/v2/models/mlp") { try channel.writeInbound(part) }
        loop.advanceTime(by: .seconds(5))
        #expect(channel.isActive)
        try Self.routerFinishes(channel)
        loop.advanceTime(by: .milliseconds(1500))
        #expect(channel.isActive)
        // A request that stops mid-body is.
        try channel.writeInbound(Self.post("/v2/models/mlp/infer", Self.validBody)[0])
        loop.advanceTime(by: .seconds(5))
        #expect(!channel.isActive)
    }

    /// The server as `onyx serve` builds it: pipelined requests on one connection, some answered
    /// on the event loop and some by the router, come back in order.
    @Test func liveServerAnswersPipelinedRequestsInOrder() async throws {
        try await HostileConnectionTests.withServer(ServerConfiguration()) { port in
            let body = HostileConnectionTests.validInfer
            let infer = "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let bad = "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            let metadata = "GET /v2/models/lenet HTTP/1.1\r\nHost: x\r\n\r\n"
            let connection = try RawConnection(port: port)
            defer { connection.close() }
            let received = await connection.exchange(Array((infer + metadata + infer + bad + infer).utf8), responses: 5)
            #expect(received.map(\.status) == [200, 200, 200, 400, 200], "\(received)")
            #expect(received.count == 5 && received[1].body.contains("\"name\":\"lenet\""), "\(received)")
            #expect(received.count == 5 && received[0].body == received[4].body)
        }
    }
}
