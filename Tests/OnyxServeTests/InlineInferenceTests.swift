import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Onyx
import Testing
@testable import OnyxServe

/// The event-loop path for small models (``InlineInferenceHandler``): which requests it answers,
/// that its answers are the router's byte for byte, and that everything else, and the order of
/// pipelined responses, is left to the router.
@Suite struct InlineInferenceTests {
    static func channel(_ configuration: ServerConfiguration = ServerConfiguration()) async throws -> EmbeddedChannel {
        let handler = InlineInferenceHandler(repository: try await ServerTests.repository(), configuration: configuration)
        return try await connected(EmbeddedChannel(handler: handler))
    }

    /// `channel`, active as a server's accepted connection is (an embedded channel starts inactive).
    static func connected(_ channel: EmbeddedChannel) async throws -> EmbeddedChannel {
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return channel
    }

    /// What the router writes at the end of its answer; the handler passes it on.
    static func routerFinishes(_ channel: EmbeddedChannel) throws {
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == .end(nil))
    }

    static func post(_ path: String, _ body: ByteBuffer, headers: HTTPFields = [:], declareLength: Bool = true) -> [HTTPRequestPart] {
        var fields = headers
        if declareLength { fields[.contentLength] = String(body.readableBytes) }
        return [.head(HTTPRequest(method: .post, scheme: nil, authority: "x", path: path, headerFields: fields)), .body(body), .end(nil)]
    }

    static func get(_ path: String) -> [HTTPRequestPart] {
        [.head(HTTPRequest(method: .get, scheme: nil, authority: "x", path: path)), .end(nil)]
    }

    /// The response the handler wrote, as status, fields and body.
    static func response(from channel: EmbeddedChannel) throws -> (HTTPResponse, [UInt8])? {
        guard case .head(let head)? = try channel.readOutbound(as: HTTPResponsePart.self) else { return nil }
        guard case .body(let body)? = try channel.readOutbound(as: HTTPResponsePart.self),
              case .end? = try channel.readOutbound(as: HTTPResponsePart.self) else {
            Issue.record("a head without a body and an end")
            return nil
        }
        return (head, Array(body.readableBytesView))
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
        let channel = try await Self.connected(
            EmbeddedChannel(handler: InlineInferenceHandler(repository: repository, configuration: ServerConfiguration())))
        let x = try ServerTests.fixtureTensor("mlp_legacy/test_data_set_0/input_0.pb")
        let header = "{\"id\":\"b\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,64],\"parameters\":{\"binary_data_size\":\(x.byteCount)}}],"
            + "\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":true}}]}"
        var binary = ByteBuffer(string: header)
        x.withUnsafeBytes { binary.writeBytes($0) }
        let lengthField = HTTPFields([HTTPField(name: Responses.headerLengthField, value: String(header.utf8.count))])
        let cases: [(String, ByteBuffer, HTTPFields)] = [
            ("/v2/models/mlp/infer", try ServerTests.inferBody(x), [:]),
            ("/v2/models/mlp/infer", binary, lengthField),
            ("/v2/models/mlp/infer", Self.validBody, HTTPFields([HTTPField(name: Responses.headerLengthField, value: "-1")])),
            ("/v2/models/lenet/versions/3/infer", Self.validBody, [:]),  // wrong input name and shape: 400
            ("/v2/models/mlp/infer", ByteBuffer(string: "{\"inputs\":"), [:]),
            ("/v2/models/mlp/infer", ByteBuffer(string: "{\"inputs\":[],\"outputs\":[{\"name\":\"nope\"}]}"), [:]),
        ]
        let router = ServerTests.app(repository)
        for (path, body, headers) in cases {
            for part in Self.post(path, body, headers: headers) { try channel.writeInbound(part) }
            #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil, "\(path) went to the router")
            let (head, bytes) = try #require(try Self.response(from: channel))
            try await router.test(.router) { client in
                try await client.execute(uri: path, method: .post, headers: headers, body: body) { routed in
                    #expect(head.status == routed.status, "\(path)")
                    #expect(bytes == Array(routed.body.readableBytesView), "\(path): \(String(decoding: bytes, as: UTF8.self).prefix(120))")
                    #expect(head.headerFields[Responses.headerLengthField] == routed.headers[Responses.headerLengthField])
                    #expect(head.headerFields[.contentType] == routed.headers[.contentType])
                }
            }
        }
        #expect(channel.isActive)
    }

    @Test func leavesEveryOtherRequestToTheRouter() async throws {
        let channel = try await Self.channel(ServerConfiguration(maxBodyBytes: 100))
        let requests: [[HTTPRequestPart]] = [
            Self.get("/v2/models/mlp"),
            Self.post("/v2/models/unknown/infer", Self.validBody),
            Self.post("/predictions/mlp", Self.validBody),
            Self.post("/v2/models/mlp/infer", Self.validBody),  // declares more than the 100-byte limit: the router's 413
        ]
        for parts in requests {
            for part in parts { try channel.writeInbound(part) }
            for part in parts { #expect(try channel.readInbound(as: HTTPRequestPart.self) == part) }
            #expect(try channel.readOutbound(as: HTTPResponsePart.self) == nil)
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
        #expect(try channel.readInbound(as: HTTPRequestPart.self) != nil)  // the GET's head
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == .end(nil))
        for part in infer { #expect(try channel.readInbound(as: HTTPRequestPart.self) == part) }
        try Self.routerFinishes(channel)
        try Self.routerFinishes(channel)
        // Both answered: the next one is taken here.
        for part in infer { try channel.writeInbound(part) }
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)
        #expect(try Self.response(from: channel)?.0.status == .ok)
    }

    /// Inline answers count against the model's instance count: with its one instance taken, a
    /// request goes to the router (and its batcher's queue); a connection that closes mid-body
    /// gives its reservation back.
    @Test func inlineAnswersTakeOneOfTheModelsInstances() async throws {
        let repository = try await ServerTests.repository(ModelConfiguration(instanceCount: 1))
        let model = try repository.model("mlp")
        let channel = try await Self.connected(EmbeddedChannel(handler: InlineInferenceHandler(repository: repository, configuration: ServerConfiguration())))
        let infer = Self.post("/v2/models/mlp/infer", Self.validBody)

        #expect(model.reserveInline())  // another connection's answer under way
        #expect(!model.reserveInline())
        for part in infer { try channel.writeInbound(part) }
        for part in infer { #expect(try channel.readInbound(as: HTTPRequestPart.self) == part) }
        try Self.routerFinishes(channel)
        model.releaseInline()

        for part in infer { try channel.writeInbound(part) }
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)
        #expect(try Self.response(from: channel)?.0.status == .ok)
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
        let (head, bytes) = try #require(try Self.response(from: channel))
        #expect(head.status == .contentTooLarge)
        #expect(head.headerFields[.connection] == "close")
        #expect(String(decoding: bytes, as: UTF8.self).contains("larger than the limit of 100 bytes"))
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)
        #expect(!channel.isActive)
    }

    @Test func connectionCloseIsHonoured() async throws {
        let channel = try await Self.channel()
        for part in Self.post("/v2/models/mlp/infer", Self.validBody, headers: [.connection: "close"]) { try channel.writeInbound(part) }
        let (head, _) = try #require(try Self.response(from: channel))
        #expect(head.status == .ok)
        #expect(head.headerFields[.connection] == "close")
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
