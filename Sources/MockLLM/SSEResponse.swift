import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Thrown inside a streaming body to cut the connection mid-stream (the "cut" fault).
struct StreamCut: Error {}

enum MockResponses {
    static func json(_ status: Int, _ object: Any, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: extra)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: Generator.json(object))))
    }

    /// A `text/event-stream` response that sleeps `ttft` before the first event and `gap` between
    /// events; with `cutAfter` it stops after that many events and drops the connection.
    static func eventStream(_ events: [String], ttftMs: Double, gap: Duration, cutAfter: Int?, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        headers.append(contentsOf: extra)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            if ttftMs > 0 { try await Task.sleep(for: .milliseconds(ttftMs)) }
            for (i, e) in events.enumerated() {
                if let cutAfter, i >= cutAfter { throw StreamCut() }
                if i > 0, gap > .zero { try await Task.sleep(for: gap) }
                try await writer.write(ByteBuffer(string: e))
            }
            try await writer.finish(nil)
        })
    }

    static func sse(_ object: Any, event: String? = nil) -> String {
        (event.map { "event: \($0)\n" } ?? "") + "data: " + Generator.json(object) + "\n\n"
    }
}
