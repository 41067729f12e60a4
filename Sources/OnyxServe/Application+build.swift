import Hummingbird
import HummingbirdCore
import HTTPTypes
import Logging
import NIOCore

/// Builds the HTTP application serving `repository`: Open Inference Protocol v2, TorchServe-style
/// routes, `/metrics`, and (when enabled) repository control. v2 infer requests to models that run
/// inline are answered on the event loop before the router (``InlineInferenceHandler``).
///
/// - Parameters:
///   - eventLoopGroup: the threads that run connections (and inline models); NIO's shared group,
///     one thread per core, when `nil`. The caller shuts a group it made down after the server stops.
///   - onServerRunning: called with the listening channel once the server is bound (its
///     `localAddress` tells the port when `configuration.port` is 0).
public func buildApplication(
    repository: ModelRepository, configuration: ServerConfiguration, logger: Logger = Logger(label: "onyx.serve"),
    eventLoopGroup: (any EventLoopGroup)? = nil,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = buildRouter(repository: repository, configuration: configuration)
    return Application(
        router: router,
        server: HTTPServerBuilder { responder in
            InlineInferenceChannel(
                base: HTTP1Channel(
                    responder: responder,
                    configuration: .init(
                        additionalChannelHandlers: [ConnectionWatchHandler()],
                        idleTimeout: nil)),  // kept by the inline handler, which sees all of a connection's requests
                repository: repository, configuration: configuration)
        },
        configuration: ApplicationConfiguration(
            address: .hostname(configuration.host, port: configuration.port),
            serverName: configuration.serverName,
            availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections)),
        onServerRunning: onServerRunning,
        eventLoopGroupProvider: eventLoopGroup.map { .shared($0) } ?? .singleton,
        logger: logger)
}

/// The router alone (for tests and embedding).
public func buildRouter(repository: ModelRepository, configuration: ServerConfiguration) -> Router<ServeRequestContext> {
    let router = Router(context: ServeRequestContext.self)
    OpenInferenceV2Routes(repository: repository, configuration: configuration).register(on: router)
    TorchServeRoutes(repository: repository, configuration: configuration).register(on: router)
    if configuration.repositoryControl {
        RepositoryControlRoutes(repository: repository, configuration: configuration).register(on: router)
    }
    router.get("metrics") { _, _ -> Response in
        let bytes = PrometheusSetup.registry?.emitToBuffer() ?? []
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
    return router
}
