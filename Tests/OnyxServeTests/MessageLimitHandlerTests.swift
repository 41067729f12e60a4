import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing
@testable import OnyxGRPC

/// The gRPC message size check on an HTTP/2 stream: length prefixes followed across DATA frames,
/// messages at the limit passed on untouched, the first one over it answered RESOURCE_EXHAUSTED.
@Suite struct MessageLimitHandlerTests {
    /// A gRPC length-prefixed message of `length` bytes (uncompressed).
    static func message(_ length: Int) -> [UInt8] {
        [0, UInt8(length >> 24 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
            + [UInt8](repeating: 7, count: length)
    }

    static func data(_ bytes: some Sequence<UInt8>, end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(bytes: Array(bytes))), endStream: end))
    }

    /// Sends `frames` in, returning the payloads passed on and those written back.
    static func run(limit: Int, _ frames: [HTTP2Frame.FramePayload]) throws -> (passed: [HTTP2Frame.FramePayload], written: [HTTP2Frame.FramePayload]) {
        let channel = EmbeddedChannel(handler: MessageLimitHandler(limit: limit))
        var passed: [HTTP2Frame.FramePayload] = []
        var written: [HTTP2Frame.FramePayload] = []
        for frame in frames {
            try channel.writeInbound(frame)
            while let out = try channel.readInbound(as: HTTP2Frame.FramePayload.self) { passed.append(out) }
            while let out = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { written.append(out) }
        }
        _ = try channel.finish(acceptAlreadyClosed: true)
        return (passed, written)
    }

    static func dataBytes(_ payloads: [HTTP2Frame.FramePayload]) -> Int {
        payloads.reduce(0) { total, payload in
            guard case .data(let frame) = payload, case .byteBuffer(let buffer) = frame.data else { return total }
            return total + buffer.readableBytes
        }
    }

    @Test func messagesUpToTheLimitPassThroughWhateverTheFrameSplit() throws {
        // Two messages at the limit and an empty one, cut so that a length prefix straddles frames.
        let stream = Self.message(100) + Self.message(0) + Self.message(100)
        let cuts = [0, 3, 104, 107, 110, 111, stream.count]
        let frames = zip(cuts, cuts.dropFirst()).map { Self.data(stream[$0..<$1], end: $1 == stream.count) }
        let (passed, written) = try Self.run(limit: 100, [.headers(.init(headers: [":path": "/x"]))] + frames)
        #expect(passed.count == frames.count + 1)
        #expect(Self.dataBytes(passed) == stream.count)
        #expect(written.isEmpty)
    }

    @Test func aMessageOverTheLimitGetsResourceExhaustedAndTheStreamEnds() throws {
        // The prefix of the second message (101 bytes) arrives split over two frames.
        let stream = Self.message(100) + Self.message(101)
        let frames = [Self.data(stream[0..<107]), Self.data(stream[107..<150]), Self.data(stream[150...], end: true)]
        let (passed, written) = try Self.run(limit: 100, [.headers(.init(headers: [":path": "/x"]))] + frames)
        #expect(Self.dataBytes(passed) == 107, "the frame before the refusal passes, nothing after it")
        #expect(written.count == 2)
        guard case .headers(let trailers)? = written.first else {
            Issue.record("expected trailers first, got \(written)")
            return
        }
        #expect(trailers.endStream)
        #expect(trailers.headers.first(name: ":status") == "200", "a Trailers-Only response")
        #expect(trailers.headers.first(name: "content-type") == "application/grpc")
        #expect(trailers.headers.first(name: "grpc-status") == "8")
        #expect(trailers.headers.first(name: "grpc-message")?.contains("101 bytes, over the server's limit of 100 bytes") == true)
        guard case .rstStream(let code)? = written.last else {
            Issue.record("expected a stream reset after the trailers, got \(written)")
            return
        }
        #expect(code == .noError)
    }

    @Test func afterResponseHeadersTheRefusalIsTrailersOnly() throws {
        let channel = EmbeddedChannel(handler: MessageLimitHandler(limit: 10))
        try channel.writeOutbound(HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200"])))
        _ = try channel.readOutbound(as: HTTP2Frame.FramePayload.self)
        try channel.writeInbound(Self.data(Self.message(11)))
        #expect(try channel.readInbound(as: HTTP2Frame.FramePayload.self) == nil)
        guard case .headers(let trailers)? = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("expected trailers")
            return
        }
        #expect(trailers.headers.first(name: ":status") == nil)
        #expect(trailers.headers.first(name: "grpc-status") == "8")
        // Later writes from the call are refused, not sent after the trailers.
        let late = channel.eventLoop.makePromise(of: Void.self)
        channel.write(HTTP2Frame.FramePayload.headers(.init(headers: ["grpc-status": "0"], endStream: true)), promise: late)
        channel.flush()
        #expect(throws: ChannelError.self) { try late.futureResult.wait() }
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
