/// How `onyx serve` listens and what it allows.
public struct ServerConfiguration: Sendable {
    /// Address to bind; loopback unless told otherwise.
    public var host: String
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
    public var serverVersion: String

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
