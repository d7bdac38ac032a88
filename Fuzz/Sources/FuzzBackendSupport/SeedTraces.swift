import EvalForgeIngest
import EvalForgeStore
import Foundation

/// Ids the seed batches store (read from the batches themselves), for routes that take one.
public enum SeedIDs {
    public static let all: (traces: [String], sessions: [String], users: [String]) = {
        var traces: [String] = [], sessions: [String] = [], users: [String] = []
        for b in (try? BatchSeeds.batches()) ?? [] {
            guard let batch = try? ForwardBatchWire.decode(b.bytes, projectID: "default") else { continue }
            for s in batch.spans {
                if !traces.contains(s.traceID) { traces.append(s.traceID) }
                if !s.sessionID.isEmpty, !sessions.contains(s.sessionID) { sessions.append(s.sessionID) }
                if !s.userID.isEmpty, !users.contains(s.userID) { users.append(s.userID) }
            }
        }
        return (traces, sessions, users)
    }()
}
