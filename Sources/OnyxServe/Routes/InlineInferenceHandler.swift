import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Answers `POST /v2/models/{m}[/versions/{v}]/infer` on the connection's event loop when the
/// model runs inline (``InlineModelHandler``), before the request reaches the router.
///
/// For a model that takes microseconds, what a request costs is the trip around it: the router's
/// task, the body's async sequence, the batcher's actor, the response writer, each a hop between
/// the event loop and Swift concurrency's threads, and before those the conversion of every head
/// into HTTP types and back. This handler sits right after the HTTP/1 decoder: the body is
/// collected as it is decoded, the model runs on the event loop, and the response is written as
/// one buffer: the same bytes, the same errors and metrics (``InferExchange``,
/// ``Responses/measuredNow(model:route:maxBodyBytes:_:)``), without a hop. Every other request
/// passes through untouched, and so do infer requests while the router is still answering an
/// earlier request on the connection, so that pipelined responses keep their order (the router's
/// answers pass this handler on their way out). The answer, encoded here, leaves through the
/// ``EncodedResponseWriter`` at the front of the pipeline.
///
/// Because the requests it answers never reach Hummingbird's connection-state handler, the
/// connection's idle timeout is kept here for all of its traffic (the state handler gets none),
/// and a graceful shutdown that arrives while a request is answered here closes the connection
/// after that answer.
final class InlineInferenceHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private struct Exchange {
        let model: ServedModel
        let name: String
        let head: HTTPRequestHead
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
    private let writer: EncodedResponseWriter
    private var state = State.idle
    /// Requests passed to the router whose response has not been written to its end.
    private var routedResponsesPending = 0
    /// A graceful shutdown began: the next answer written here closes the connection.
    private var quiescing = false
    private let idleTimeout: TimeAmount?
    private var lastActive = NIODeadline.uptimeNanoseconds(0)
    private var idleCheck: Scheduled<Void>?

    init(repository: ModelRepository, configuration: ServerConfiguration, writer: EncodedResponseWriter) {
        self.repository = repository
        self.configuration = configuration
        self.writer = writer
        idleTimeout = configuration.idleTimeoutSeconds > 0 ? .seconds(Int64(configuration.idleTimeoutSeconds)) : nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActive = context.eventLoop.now
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
                }, to: exchange.head, closing: true, context: context)
                return
            }
            exchange.body.writeImmutableBuffer(chunk)
            state = .collecting(exchange)
        case (.collecting(let exchange), .end):
            state = .idle
            let parts = answer(exchange)
            write(parts, to: exchange.head, closing: quiescing || !exchange.head.isKeepAlive, context: context)
        case (.discarding, .end):
            state = .idle
        case (.discarding, _):
            break
        default:
            // Whatever else the router makes of it (a body with no head is the decoder's error).
            context.fireChannelRead(data)
        }
    }

    /// The router's answers pass here on their way to the encoder; when one ends, the next
    /// request may be answered here again.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            routedResponsesPending -= 1
            lastActive = context.eventLoop.now
        }
        context.write(data, promise: promise)
    }

    // MARK: Connection state

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { scheduleIdleCheck(context: context, at: context.eventLoop.now) }
    }

    func channelActive(context: ChannelHandlerContext) {
        scheduleIdleCheck(context: context, at: context.eventLoop.now)
        context.fireChannelActive()
    }

    /// A connection that closes mid-body gives its reservation back.
    func channelInactive(context: ChannelHandlerContext) {
        abandon()
        idleCheck?.cancel()
        idleCheck = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandon()
        idleCheck?.cancel()
        idleCheck = nil
    }

    /// A graceful shutdown waits for an answer under way here; otherwise the connection-state
    /// handler decides (it closes the connection now, or after the router's answers).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        quiescing = true
        switch state {
        case .collecting, .discarding: break
        case .idle, .forwarding: context.fireUserInboundEventTriggered(event)
        }
    }

    private func abandon() {
        guard case .collecting(let exchange) = state else { return }
        exchange.model.releaseInline()
        state = .discarding
    }

    /// One timer per connection, not one per request: each check closes a connection that has
    /// been idle (or stalled mid-request) for the timeout since its last activity, or looks again
    /// when that time comes. A connection whose request is read in full and still being answered
    /// by the router is not idle.
    private func scheduleIdleCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        guard let idleTimeout, idleCheck == nil else { return }
        idleCheck = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline + idleTimeout) {
            self.idleCheck = nil
            let now = context.eventLoop.now
            if case .idle = self.state, self.routedResponsesPending > 0 {
                self.scheduleIdleCheck(context: context, at: now)
            } else if now >= self.lastActive + idleTimeout {
                context.close(promise: nil)
            } else {
                self.scheduleIdleCheck(context: context, at: self.lastActive)
            }
        }
    }

    // MARK: Answering

    /// The exchange to answer here, or `nil` to leave the request to the router (any other
    /// route, an unknown model, a declared body over the limit, or a model that does not run
    /// inline or not now: see ``ServedModel/reserveInline()``).
    private func inlineExchange(_ head: HTTPRequestHead, allocator: ByteBufferAllocator) -> Exchange? {
        guard head.method == .POST, let target = Self.inferTarget(head.uri),
              let model = try? repository.model(target.name, version: target.version) else { return nil }
        var capacity = 0
        if let declared = head.headers.first(name: "content-length") {
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
            let headerLength = try InferExchange.headerLength(exchange.head.headers.first(name: Responses.headerLengthField.rawName))
            let decoded = try InferExchange.decode(
                exchange.body.getBytes(at: exchange.body.readerIndex, length: exchange.body.readableBytes) ?? [],
                headerLength: headerLength, for: exchange.model)
            reserved = false
            let result = exchange.model.inferNow(reserved: decoded.request)
            return InferExchange.answer(try result.get(), to: decoded, name: exchange.name, model: exchange.model)
        }
    }

    /// The whole response as one buffer, in the request's HTTP version, with the headers the
    /// router's path gives it (`Server`, and `Connection` when the connection closes after it or
    /// an HTTP/1.0 client asked to keep it).
    private func write(_ parts: Responses.Parts, to request: HTTPRequestHead, closing: Bool, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: parts.body.count + 192)
        buffer.writeString("HTTP/\(request.version.major).\(request.version.minor) \(parts.status.code) \(parts.status.reasonPhrase)\r\n")
        for field in parts.headers {
            buffer.writeString("\(field.name.rawName): \(field.value)\r\n")
        }
        buffer.writeString("Server: \(configuration.serverName)\r\n")
        if closing {
            buffer.writeString("Connection: close\r\n")
        } else if request.version == .http1_0 {
            buffer.writeString("Connection: keep-alive\r\n")
        }
        buffer.writeString("\r\n")
        buffer.writeBytes(parts.body)
        lastActive = context.eventLoop.now
        writer.write(buffer, closing: closing)
    }
}

/// The first handler of the connection's pipeline, ahead of the HTTP/1 response encoder: writes
/// the ``InlineInferenceHandler``'s answers, already encoded, straight to the socket. (That
/// handler sits after the decoder, and the encoder, ahead of the decoder, would take anything it
/// wrote for a response part.)
final class EncodedResponseWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes and flushes `bytes`, then closes the connection if `closing`.
    func write(_ bytes: ByteBuffer, closing: Bool) {
        guard let context else { return }
        guard closing else {
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes)), promise: written)
        written.futureResult.whenComplete { _ in context.close(promise: nil) }
    }
}

/// Hummingbird's HTTP/1 child channel with an ``InlineInferenceHandler`` right after its HTTP/1
/// decoder and an ``EncodedResponseWriter`` first. The base channel must have no idle timeout of
/// its own: the inline handler keeps it for the whole connection.
struct InlineInferenceChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let repository: ModelRepository
    let configuration: ServerConfiguration

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let writer = EncodedResponseWriter()
            try operations.addHandler(writer, position: .first)
            try operations.addHandler(
                InlineInferenceHandler(repository: repository, configuration: configuration, writer: writer), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
