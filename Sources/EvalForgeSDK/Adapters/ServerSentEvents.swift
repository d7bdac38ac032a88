import EvalForgeCore

/// One server-sent event.
public struct ServerSentEvent: Sendable, Hashable {
    /// The `event:` field; "message" when absent.
    public var event: String
    /// The `data:` lines joined by "\n".
    public var data: String
    public var id: String?

    public init(event: String = "message", data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// Incremental `text/event-stream` parser: feed bytes as they arrive, get complete events.
/// Handles LF, CRLF and CR line endings, comments, multi-line data and events split across chunks.
public struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var lastWasCR = false
    private var eventName: String?
    private var dataLines: [String] = []
    private var id: String?
    private var dataBytes = 0
    /// Longest line accepted; longer lines are cut (protects against a peer that never sends a newline).
    public var maxLineBytes = 8 * 1024 * 1024
    /// Most `data:` bytes kept per event; further data lines of the event are dropped (protects
    /// against a peer that never sends the blank line ending an event).
    public var maxEventBytes = 16 * 1024 * 1024

    public init() {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for b in bytes {
            if b == UInt8(ascii: "\n") {
                if lastWasCR {
                    lastWasCR = false
                    continue
                }
                endLine(&events)
            } else if b == UInt8(ascii: "\r") {
                lastWasCR = true
                endLine(&events)
            } else {
                lastWasCR = false
                if line.count < maxLineBytes { line.append(b) }
            }
        }
        return events
    }

    /// Dispatches a final event that was not followed by a blank line.
    public mutating func finish() -> ServerSentEvent? {
        var events: [ServerSentEvent] = []
        if !line.isEmpty { endLine(&events) }
        endLine(&events)
        return events.first
    }

    private mutating func endLine(_ events: inout [ServerSentEvent]) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if !dataLines.isEmpty || eventName != nil {
                events.append(ServerSentEvent(event: eventName ?? "message", data: dataLines.joined(separator: "\n"), id: id))
            }
            eventName = nil
            dataLines.removeAll()
            dataBytes = 0
            return
        }
        if line.first == UInt8(ascii: ":") { return }
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let field = String(decoding: line[..<(colon ?? line.endIndex)], as: UTF8.self)
        var valueStart = colon.map { $0 + 1 } ?? line.endIndex
        if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = String(decoding: line[valueStart...], as: UTF8.self)
        switch field {
        case "event": eventName = value
        case "data":
            guard dataBytes < maxEventBytes else { break }
            dataBytes = dataBytes.addingSaturated(line.count)
            dataLines.append(value)
        case "id": id = value
        default: break
        }
    }
}
