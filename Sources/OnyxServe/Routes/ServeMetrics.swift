import Metrics
import Prometheus
import Synchronization

/// Per-model metrics, recorded through swift-metrics so any backend works; `onyx serve`
/// bootstraps the Prometheus one and `/metrics` emits its registry.
struct ModelMetrics: Sendable {
    let model: String
    private let queue: Metrics.Timer
    private let compute: Metrics.Timer
    private let batchSize: Recorder

    init(model: String) {
        self.model = model
        queue = Metrics.Timer(label: "onyx_queue_duration_seconds", dimensions: [("model", model)], preferredDisplayUnit: .seconds)
        compute = Metrics.Timer(label: "onyx_compute_duration_seconds", dimensions: [("model", model)], preferredDisplayUnit: .seconds)
        batchSize = Recorder(label: "onyx_batch_size", dimensions: [("model", model)], aggregate: true)
    }

    func recordQueue(_ duration: Duration) { queue.record(duration: duration) }

    func recordCompute(_ duration: Duration, batchSize size: Int) {
        compute.record(duration: duration)
        batchSize.record(size)
    }

    /// Why a request left the queue without running.
    enum CancelReason: String {
        /// Its client disconnected (HTTP) or cancelled the call (gRPC).
        case clientGone = "client_disconnected"
        /// Its own deadline passed: the `timeout` parameter or the gRPC deadline.
        case timeout
        /// It waited past the model's `timeout_ms`.
        case queueTimeout = "queue_timeout"
    }

    /// Counts a request dropped before it ran: `onyx_requests_cancelled_total{model,reason}`.
    func recordCancelled(_ reason: CancelReason) {
        Counter(label: "onyx_requests_cancelled_total", dimensions: [("model", model), ("reason", reason.rawValue)]).increment()
    }
}

/// Request-level metrics: counts by model and status, latency, requests in flight.
package enum RequestMetrics {
    package static let inFlight = Meter(label: "onyx_inflight_requests")

    private struct Key: Hashable {
        let model: String
        let route: String
        let status: Int
    }

    /// The counter and timer of each (model, route, status) seen, so a request does not build
    /// them anew (a factory lookup, label validation and locks: a few percent of a small model's
    /// request). Bounded: past `cachedLimit` keys (say, requests naming ever new unknown models)
    /// metrics are built per request as before.
    private static let cached = Mutex<[Key: (Metrics.Counter, Metrics.Timer)]>([:])
    private static let cachedLimit = 1024

    package static func record(model: String, route: String, status: Int, duration: Duration) {
        let key = Key(model: model, route: route, status: status)
        let metrics = cached.withLock { table in
            if let found = table[key] { return found }
            let made = (
                Metrics.Counter(label: "onyx_requests_total", dimensions: [("model", model), ("route", route), ("status", String(status))]),
                Metrics.Timer(label: "onyx_request_duration_seconds", dimensions: [("model", model), ("route", route)], preferredDisplayUnit: .seconds))
            if table.count < cachedLimit { table[key] = made }
            return made
        }
        metrics.0.increment()
        metrics.1.record(duration: duration)
    }

    /// Forgets the cached metrics: those made before a backend was bootstrapped record nowhere.
    static func forgetCached() {
        cached.withLock { $0.removeAll() }
    }
}

/// The Prometheus registry behind `/metrics`, bootstrapped once per process.
public enum PrometheusSetup {
    private static let state = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Installs the Prometheus backend for swift-metrics (only the first call has an effect) and returns its registry.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        state.withLock { registry in
            if let registry { return registry }
            let created = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: created)
            factory.defaultDurationHistogramBuckets = [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
            ]
            factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64]
            MetricsSystem.bootstrap(factory)
            RequestMetrics.forgetCached()
            registry = created
            return created
        }
    }

    /// The registry, if ``bootstrap()`` ran.
    public static var registry: PrometheusCollectorRegistry? { state.withLock { $0 } }
}
