import ServiceLifecycle

/// The `fsync: interval:<ms>` policy: syncs the WAL on a timer (off the cooperative pool), and once
/// more when the collector shuts down.
struct WALSyncService: Service {
    let wal: WriteAheadLog
    let interval: Duration

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            await wal.syncInBackground()
        }
        await wal.syncInBackground()
    }
}
