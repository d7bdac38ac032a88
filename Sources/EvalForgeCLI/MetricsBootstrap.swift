import Metrics
import Prometheus
import Synchronization

/// The executable's swift-metrics backend: one Prometheus registry, bootstrapped once per process
/// (the libraries emit through swift-metrics; `/metrics` renders this registry).
enum MetricsBootstrap {
    private static let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    /// The process's registry, bootstrapping swift-metrics with it on first use.
    static func prometheus() -> PrometheusCollectorRegistry {
        registry.withLock { r in
            if let r { return r }
            let created = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: created))
            r = created
            return created
        }
    }
}
