import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Answers `POST /v2/models/{m}[/versions/{v}]/infer` on the connection's event loop when the
/// model runs inline (``InlineModelHandler``), before the request reaches the router.
///
/// For a model that takes microseconds, what a request costs is the trip around it: the router's
/// task, the body's async sequence, the batcher's actor, the response writer, each a hop between
/// the event loop and Swift concurrency's threads. Here the body is collected as it is decoded,
/// the model runs on the event loop, and the response is written from there: the same bytes, the
/// same errors and metrics (``InferExchange``, ``Responses/measuredNow(model:route:maxBodyBytes:_:)``),
/// without a hop. Every other request passes through untouched, and so do infer requests while the
/// router is still answering an earlier request on the connection, so that pipelined responses
/// keep their order.
///
/// The handler sits after Hummingbird's connection-state handler, which therefore sees these
/// requests and their responses too: idle timeouts and graceful shutdown's close-after-response
/// hold for them as for routed ones.
final class InlineInferenceHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private struct Exchange {
        let model: ServedModel
        let name: String
        let head: HTTPRequest
        var body: ByteBuffer
    }

    private enum State {
        /// Between requests.
        case idle
        /// Passing a request to the router, up to and including its end.
        case forwarding
        /// Collecting the body of a request answered here.
        case collecting(Exchange)
        /// Dropping the rest of a request already answered (its body was over the limit).
        case discarding
    }

    private let repository: ModelRepository
    private let configuration: ServerConfiguration
    private var state = State.idle
    /// Requests passed to the router whose response has not been written to its end.
    private var routedResponsesPending = 0

    init(repository: ModelRepository, configuration: ServerConfiguration) {
        self.repository = repository
        self.configuration = configuration
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (state, unwrapInboundIn(data)) {
        case (.idle, .head(let head)):
            if routedResponsesPending == 0, let exchange = inlineExchange(head, allocator: context.channel.allocator) {
                state = .collecting(exchange)
                return
            }
            routedResponsesPending += 1
            state = .forwarding
            context.fireChannelRead(data)
        case (.forwarding, .end):
            state = .idle
            context.fireChannelRead(data)
        case (.collecting(var exchange), .body(let chunk)):
            state = .idle  // so `exchange.body` is not shared while it grows
            guard exchange.body.readableBytes + chunk.readableBytes <= configuration.maxBodyBytes else {
                state = .discarding
                exchange.model.releaseInline()
                let error = HandlerError(status: 413, "request body is larger than the limit of \(configuration.maxBodyBytes) bytes")
                write(Responses.measuredNow(model: exchange.name, route: "infer", maxBodyBytes: configuration.maxBodyBytes) {
                    throw error
                }, closing: true, context: context)
                return
            }
            exchange.body.writeImmutableBuffer(chunk)
            state = .collecting(exchange)
        case (.collecting(let exchange), .end):
            state = .idle
            let parts = answer(exchange)
            write(parts, closing: exchange.head.headerFields[.connection] == "close", context: context)
        case (.discarding, .end):
            state = .idle
        case (.discarding, _):
            break
        default:
            // Whatever else the router makes of it (a body with no head is the decoder's error).
            context.fireChannelRead(data)
        }
    }

    /// A connection that closes mid-body gives its reservation back.
    func channelInactive(context: ChannelHandlerContext) {
        abandon()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandon()
    }

    private func abandon() {
        guard case .collecting(let exchange) = state else { return }
        exchange.model.releaseInline()
        state = .discarding
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { routedResponsesPending -= 1 }
        context.write(data, promise: promise)
    }

    /// The exchange to answer here, or `nil` to leave the request to the router (any other
    /// route, an unknown model, a declared body over the limit, or a model that does not run
    /// inline or not now: see ``ServedModel/reserveInline()``).
    private func inlineExchange(_ head: HTTPRequest, allocator: ByteBufferAllocator) -> Exchange? {
        guard head.method == .post, let path = head.path, let target = Self.inferTarget(path),
              let model = try? repository.model(target.name, version: target.version) else { return nil }
        var capacity = 0
        if let declared = head.headerFields[.contentLength] {
            guard let length = Int(declared), length <= configuration.maxBodyBytes else { return nil }
            capacity = length
        }
        guard model.reserveInline() else { return nil }
        // A declared length is reserved up to a bound: a client may declare more than it sends.
        return Exchange(model: model, name: target.name, head: head, body: allocator.buffer(capacity: min(capacity, 1 << 16)))
    }

    /// The model name and version of an infer path, `nil` for any other path. Read as bytes: it
    /// runs for every request, and String's Unicode-aware prefix and split cost more than the model.
    static func inferTarget(_ path: String) -> (name: String, version: String?)? {
        let parts = path.utf8.prefix { $0 != UInt8(ascii: "?") }.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 5 || parts.count == 7, parts[0].isEmpty, parts[1].elementsEqual("v2".utf8),
              parts[2].elementsEqual("models".utf8), parts.last!.elementsEqual("infer".utf8),
              parts.count == 5 || parts[4].elementsEqual("versions".utf8) else { return nil }
        let name = parts[3], version = parts.count == 7 ? parts[5] : nil
        for part in [name, version ?? name] where part.isEmpty || part.contains(UInt8(ascii: "%")) { return nil }
        return (String(Substring(name)), version.map { String(Substring($0)) })
    }

    private func answer(_ exchange: Exchange) -> Responses.Parts {
        var reserved = true  // until the model runs, which gives the reservation back itself
        defer { if reserved { exchange.model.releaseInline() } }
        return Responses.measuredNow(model: exchange.name, route: "infer", maxBodyBytes: configuration.maxBodyBytes) {
            let headerLength = try InferExchange.headerLength(exchange.head.headerFields[Responses.headerLengthField])
            let decoded = try InferExchange.decode(
                exchange.body.getBytes(at: exchange.body.readerIndex, length: exchange.body.readableBytes) ?? [],
                headerLength: headerLength, for: exchange.model)
            reserved = false
            let result = exchange.model.inferNow(reserved: decoded.request)
            return InferExchange.answer(try result.get(), to: decoded, name: exchange.name, model: exchange.model)
        }
    }

    private func write(_ parts: Responses.Parts, closing: Bool, context: ChannelHandlerContext) {
        var headers = parts.headers
        headers[.server] = configuration.serverName
        if closing { headers[.connection] = "close" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: parts.status, headerFields: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: parts.body))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        if closing {
            written.futureResult.whenComplete { _ in context.close(promise: nil) }
        }
    }
}

/// Hummingbird's HTTP/1 child channel with an ``InlineInferenceHandler`` added after its
/// connection-state handler.
struct InlineInferenceChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let repository: ModelRepository
    let configuration: ServerConfiguration

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let state = try operations.handler(type: HTTPConnectionStateHandler.self)
            try operations.addHandler(
                InlineInferenceHandler(repository: repository, configuration: configuration), position: .after(state))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
