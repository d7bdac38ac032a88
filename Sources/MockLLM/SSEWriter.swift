import HTTPTypes
import Hummingbird
import NIOCore

/// Thrown inside a response body to drop the connection mid-response (the "cut" fault).
struct ResponseCut: Error {}

/// Response bodies of the mock: JSON, server-sent events with their timing, and deliberately
/// broken ones for fault injection.
enum MockResponses {
    static func json(_ status: Int, _ value: JSONValue, headers extra: HTTPFields = [:]) -> Response {
        text(status, value.text, contentType: "application/json", headers: extra)
    }

    static func text(_ status: Int, _ body: String, contentType: String, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: contentType]
        headers.append(contentsOf: extra)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// One server-sent event: `event: <name>\n` (when named) and `data: <json>\n\n`.
    static func sse(_ value: JSONValue, event: String? = nil) -> String {
        sse(json: value.text, event: event)
    }

    static func sse(json: String, event: String? = nil) -> String {
        (event.map { "event: \($0)\n" } ?? "") + "data: " + json + "\n\n"
    }

    /// A `text/event-stream` response that waits `ttftMs` before the first event and `gap` between
    /// events. With `cutAfter` it sends that many events, then drops the connection without the rest.
    /// Without a gap all events go out in one write.
    static func eventStream(
        _ events: [String], ttftMs: Double, gap: Duration, cutAfter: Int? = nil, headers extra: HTTPFields = [:]
    ) -> Response {
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        headers.append(contentsOf: extra)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            if ttftMs > 0 { try await Task.sleep(for: .milliseconds(ttftMs)) }
            let sent = cutAfter.map { min($0, events.count) } ?? events.count
            if gap <= .zero {
                var buffer = ByteBuffer()
                buffer.reserveCapacity(events.prefix(sent).reduce(0) { $0 + $1.utf8.count })
                for e in events.prefix(sent) { buffer.writeString(e) }
                try await writer.write(buffer)
            } else {
                for (i, e) in events.prefix(sent).enumerated() {
                    if i > 0 { try await Task.sleep(for: gap) }
                    try await writer.write(ByteBuffer(string: e))
                }
            }
            if cutAfter != nil { throw ResponseCut() }
            try await writer.finish(nil)
        })
    }

    /// A JSON answer that stops half-way through its body, then the connection drops
    /// (the "cut" fault on a non-streaming request).
    static func cutBody(_ body: String, ttftMs: Double) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody { writer in
            if ttftMs > 0 { try await Task.sleep(for: .milliseconds(ttftMs)) }
            let half = body.utf8.prefix(max(1, body.utf8.count / 2))
            try await writer.write(ByteBuffer(bytes: half))
            throw ResponseCut()
        })
    }

    /// Waits `ms` before answering (time to first byte of a non-streaming answer).
    static func delay(_ ms: Double) async throws {
        if ms > 0 { try await Task.sleep(for: .milliseconds(ms)) }
    }
}
