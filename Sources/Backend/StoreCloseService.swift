import EvalForgeStore
import ServiceLifecycle

/// Closes the span store at graceful shutdown, after the server and every other service stopped
/// (it is the first service of the group, and a service group stops its services in reverse
/// order): the ClickHouse writer inserts what it grouped and its HTTP client shuts down, instead of
/// being dropped mid-insert when the process exits.
struct StoreCloseService: Service {
    let store: any SpanStore
    /// Closed after the store: a Postgres metadata pool's connections end cleanly.
    var metadata: (any MetadataDatabase)? = nil

    func run() async throws {
        // Returns at graceful shutdown; throws only when the group is cancelled, and then the store
        // is closed all the same.
        try? await gracefulShutdown()
        await store.shutdown()
        if let metadata, metadata.dialect == .postgres { await metadata.shutdown() }
    }
}
