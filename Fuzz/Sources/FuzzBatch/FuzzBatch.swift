import EvalForgeIngest
import EvalForgeStore
import Foundation
import FuzzBackendSupport
import FuzzSupport

/// The libFuzzer entry point of the `batch` surface (scripts/fuzz batch): one input is a forwarded
/// batch body (`evalforge.v1.ForwardBatch`, uncompressed) as a collector posts it to
/// `/v1/batches`. It goes through the backend's router (API key, body reading, the batch reader,
/// validation) into the SQLite store of this process (a scratch file, accumulating across
/// inputs); when stored, the stored rows are read back the way the API and the web UI read them
/// (trace list and detail, sessions, usage, dashboard), so a value that is stored but poisons a
/// later page is found too. A 4xx is an expected answer; a trap, hang or 5xx other than 503 is a finding.
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    BatchFuzz.run(Fuzz.bytes(data, size))
    return 0
}

enum BatchFuzz {
    static let fixture = BackendFixture.make(seeded: false)

    static func run(_ input: [UInt8]) {
        let f = fixture
        _ = Fuzz.blocking { () -> Int in
            let r = await f.send(.post, "/v1/batches", body: input, contentType: "application/x-protobuf")
            Fuzz.expectNoServerError(r.status, "POST /v1/batches", r.body)
            guard r.status == 200, let batch = try? ForwardBatchWire.decode(input, projectID: "default") else { return r.status }
            var paths = ["/api/traces?limit=20", "/api/sessions", "/api/users", "/api/usage", "/api/metrics", "/", "/traces", "/sessions"]
            for t in Set(batch.spans.map(\.traceID)).prefix(4) { paths += ["/api/traces/\(t)", "/traces/\(t)"] }
            for s in Set(batch.spans.map(\.sessionID)).filter({ !$0.isEmpty }).prefix(2) { paths.append("/api/sessions/\(s)") }
            for p in paths {
                let q = await f.send(.get, p)
                Fuzz.expectNoServerError(q.status, "GET \(p)", q.body)
            }
            return r.status
        }
    }
}
