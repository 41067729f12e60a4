import Hummingbird
import NIOCore
import Synchronization

/// The request context of `onyx serve`'s routes: Hummingbird's basic one and the connection the
/// request came on, so a route can tell when its client goes away.
public struct ServeRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    public let channel: any Channel

    /// Creates the context of one request.
    ///
    /// - Parameter source: The connection and logger the server gives.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

extension ServeRequestContext {
    /// Runs `request` through `model`, cancelled if the client goes away while it waits: a request
    /// still queued then leaves the queue without running.
    func infer(_ request: HandlerRequest, on model: ServedModel) async throws -> HandlerResponse {
        guard let watch = ConnectionWatch.of(channel) else { return try await model.infer(request) }
        return try await watch.run { try await model.infer(request) }
    }
}

/// Whether an HTTP connection's client is still there: a request waiting for its model is
/// cancelled when the client closes the connection (or its sending side), so the batcher drops it
/// from the queue before it runs. Each connection's ``ConnectionWatchHandler`` keeps one.
final class ConnectionWatch: Sendable {
    private struct State {
        var gone = false
        var onGone: (@Sendable () -> Void)?
    }
    private let state = Mutex(State())
    private static let byChannel = LockedDictionary<ObjectIdentifier, ConnectionWatch>()

    /// The watch of `channel`'s connection, if it has one (not under HummingbirdTesting's `.router`).
    static func of(_ channel: any Channel) -> ConnectionWatch? { byChannel.get(ObjectIdentifier(channel)) }

    static func register(_ watch: ConnectionWatch?, for channel: any Channel) { byChannel.set(ObjectIdentifier(channel), watch) }

    /// Marks the client gone and cancels the request waiting, if any.
    func clientGone() {
        let cancel = state.withLock { state -> (@Sendable () -> Void)? in
            state.gone = true
            defer { state.onGone = nil }
            return state.onGone
        }
        cancel?()
    }

    /// Runs `operation` in a task of its own, cancelled if the client goes away before it ends.
    ///
    /// - Parameter operation: The model call.
    /// - Returns: What `operation` returns.
    /// - Throws: What `operation` throws (``HandlerError`` 499 when cancelled while queued).
    func run<Output: Sendable>(_ operation: @escaping @Sendable () async throws -> Output) async throws -> Output {
        let work = Task { try await operation() }
        let goneAlready = state.withLock { state -> Bool in
            if !state.gone { state.onGone = { work.cancel() } }
            return state.gone
        }
        if goneAlready { work.cancel() }
        defer { state.withLock { $0.onGone = nil } }
        return try await withTaskCancellationHandler { try await work.value } onCancel: { work.cancel() }
    }
}

/// Watches one HTTP connection for its client leaving: the end of its input (the server allows
/// half-closed connections, so a client's close shows first as that) or the connection closing.
final class ConnectionWatchHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let watch = ConnectionWatch()

    func handlerAdded(context: ChannelHandlerContext) {
        ConnectionWatch.register(watch, for: context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ConnectionWatch.register(nil, for: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        watch.clientGone()
        ConnectionWatch.register(nil, for: context.channel)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { watch.clientGone() }
        context.fireUserInboundEventTriggered(event)
    }
}
