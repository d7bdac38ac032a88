/// The release of every EvalForge binary and library, in one place: `evalforge --version`, the
/// backend's and the collector's `/healthz` and `/readyz`, and the SDK's `telemetry.sdk.version`.
/// Bumped per release; schema versions are not here (each store reports its own migrations).
package enum EvalForgeVersion {
    /// Semantic version of this build.
    package static let release = "0.1.0"

    /// Version of the collector → backend batch protocol (`POST /v1/batches` carrying an
    /// `evalforge.v1.ForwardBatch`, keyed by `X-EvalForge-Batch-Id`). A backend accepts every
    /// version up to its own, so during a rolling upgrade backends are upgraded before collectors.
    package static let forwardProtocol = 1

    /// Version of the collector's on-disk WAL and outbox records; a collector replays records of
    /// this version and earlier (downgrading a collector across a change is not supported).
    package static let collectorQueueFormat = 1
}
