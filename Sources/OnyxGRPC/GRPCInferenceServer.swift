import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import OnyxServe
import ServiceLifecycle

/// The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, as KServe and Triton
/// define it) on its own port, serving the same models as the HTTP application: a
/// swift-service-lifecycle service to run beside it in one `ServiceGroup`. A graceful shutdown
/// (SIGTERM) stops accepting RPCs and lets the ones in flight finish.
///
/// Limits come from the same ``ServerConfiguration`` as HTTP: the bind address, the largest
/// request message (`maxBodyBytes`; a larger one is answered RESOURCE_EXHAUSTED from its length
/// prefix, before it is read, by ``MessageLimitHandler``) and the idle timeout.
public struct GRPCInferenceServer: Service {
    private let repository: ModelRepository
    private let configuration: ServerConfiguration
    private let port: Int
    private let logger: Logger
    private let onListening: @Sendable (Int) async -> Void

    /// Creates a server; it listens once ``run()`` is called.
    ///
    /// - Parameters:
    ///   - repository: The models to serve.
    ///   - configuration: The host to bind and the limits, shared with the HTTP front.
    ///   - port: The TCP port (Triton's gRPC default is 8001); 0 picks a free one.
    ///   - logger: Where start-up and failures are logged.
    ///   - onListening: Called with the bound port once the server listens.
    public init(
        repository: ModelRepository, configuration: ServerConfiguration, port: Int,
        logger: Logger = Logger(label: "onyx.grpc"), onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.repository = repository
        self.configuration = configuration
        self.port = port
        self.logger = logger
        self.onListening = onListening
    }

    /// Serves until the task is cancelled or a graceful shutdown is triggered.
    ///
    /// - Throws: If the address cannot be bound or the transport fails.
    public func run() async throws {
        let transport = HTTP2ServerTransport.Posix(
            address: Self.address(host: configuration.host, port: port),
            transportSecurity: .plaintext,
            config: .defaults { config in
                config.rpc.maxRequestPayloadSize = configuration.maxBodyBytes
                config.connection.maxIdleTime = .seconds(configuration.idleTimeoutSeconds)
                config.http2.targetWindowSize = Self.flowControlWindow
                let limit = configuration.maxBodyBytes
                config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(MessageLimitHandler(limit: limit), position: .first)
                    }
                }
            })
        let shutdown = ShutdownFlag()
        let server = GRPCServer(
            transport: transport,
            services: [InferenceService(repository: repository, configuration: configuration, shutdown: shutdown)])
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                if let address = try await server.listeningAddress {
                    let bound = address.ipv4?.port ?? address.ipv6?.port ?? port
                    logger.debug("gRPC listening", metadata: ["port": "\(bound)"])
                    await onListening(bound)
                }
            }
        } onGracefulShutdown: {
            shutdown.set()
            server.beginGracefulShutdown()
        }
    }

    /// The HTTP/2 flow-control window the server grants each connection and each stream, in bytes
    /// (grpc-swift's client default; its server default is 64 KiB). With 64 KiB a client may have
    /// only that much unacknowledged, so a 600 KB tensor took about twenty WINDOW_UPDATE round
    /// trips, and every call on the connection (gRPC clients share one) waited behind them. It
    /// bounds what one connection can have in flight; each message stays bounded by
    /// `maxBodyBytes`, checked from its length prefix before it is read.
    static let flowControlWindow = 8 << 20

    /// The socket address for `host`: an IPv6 literal, an IPv4 literal, or `localhost`.
    static func address(host: String, port: Int) -> GRPCNIOTransportCore.SocketAddress {
        if host == "localhost" { return .ipv4(host: "127.0.0.1", port: port) }
        return host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
    }
}
