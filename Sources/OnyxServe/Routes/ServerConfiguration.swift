/// How `onyx serve` listens and what it allows.
public struct ServerConfiguration: Sendable {
    /// Address to bind; loopback unless told otherwise.
    public var host: String
    /// TCP port to listen on.
    public var port: Int
    /// Largest request body (bytes); larger ones get 413 before they are read in full.
    public var maxBodyBytes: Int
    /// Seconds an idle connection (including a client that stops sending) stays open.
    public var idleTimeoutSeconds: Int
    /// Most concurrent connections accepted.
    public var maxConnections: Int
    /// Whether `/v2/repository/...` load/unload routes exist.
    public var repositoryControl: Bool
    /// The bearer token those routes require.
    public var controlToken: String?
    /// Server name and version reported by `GET /v2`.
    public var serverName: String
    /// The version reported by `GET /v2`.
    public var serverVersion: String

    /// Creates a configuration; the defaults are `onyx serve`'s.
    ///
    /// - Parameters:
    ///   - host: Address to bind.
    ///   - port: TCP port to listen on.
    ///   - maxBodyBytes: Largest request body.
    ///   - idleTimeoutSeconds: Seconds an idle connection stays open.
    ///   - maxConnections: Most concurrent connections.
    ///   - repositoryControl: Whether the load/unload routes exist.
    ///   - controlToken: The bearer token those routes require.
    ///   - serverName: Server name reported by `GET /v2`.
    ///   - serverVersion: Server version reported by `GET /v2`.
    public init(
        host: String = "127.0.0.1", port: Int = 8000, maxBodyBytes: Int = 64 << 20, idleTimeoutSeconds: Int = 60,
        maxConnections: Int = 1024, repositoryControl: Bool = false, controlToken: String? = nil,
        serverName: String = "onyx", serverVersion: String = "0.1.0"
    ) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.maxConnections = maxConnections
        self.repositoryControl = repositoryControl
        self.controlToken = controlToken
        self.serverName = serverName
        self.serverVersion = serverVersion
    }
}
