import Backend
import EvalForgeCompression
import Foundation
import FuzzSupport
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded

@testable import Collector

/// The real backend for the batch, query and evaluator fuzzers: its services on SQLite files in a
/// scratch directory and the router `evalforge backend` serves, called directly (no socket): each
/// input is a `Request` answered by the same responder, API-key middleware included.
public final class BackendFixture: Sendable {
    public static let apiKey = "efk_fuzz_0123456789abcdef"
    public let services: BackendServices
    let responder: RouterResponder<BackendRequestContext>
    let channel: NIOAsyncTestingChannel
    /// The UI session cookie's value (pages); API routes take the key.
    let sessionID: String

    /// Opens a fresh backend (one per process) and, when `seeded`, stores the seed batches so
    /// queries have traces, sessions, users and rollups to read.
    public static func make(seeded: Bool) -> BackendFixture {
        let dir = Fuzz.scratchDirectory("backend")
        let result = Fuzz.blocking { () -> BackendFixture in
            var logger = Logger(label: "evalforge.fuzz")
            logger.logLevel = .critical
            let c = BackendConfiguration(dataDirectory: dir, bootstrapAPIKey: apiKey)
            let services = try await BackendApp.makeServices(configuration: c, logger: logger)
            // The web UI's sign-in: a server-side session for the fixture's key.
            guard let session = try await services.sessions.store.create(key: apiKey, idleSeconds: 86_400, absoluteSeconds: 86_400) else {
                throw FixtureError(message: "cannot create a UI session for the fixture's key")
            }
            let fixture = BackendFixture(services: services, sessionID: session.id)
            if seeded {
                for batch in try BatchSeeds.batches() {
                    let r = await fixture.send(.post, "/v1/batches", body: batch.bytes, contentType: "application/x-protobuf")
                    guard r.status == 200 else { throw FixtureError(message: "seed batch \(batch.name) answered \(r.status): \(String(decoding: r.body, as: UTF8.self))") }
                }
            }
            return fixture
        }
        switch result {
        case .success(let f): return f
        case .failure(let e):
            FileHandle.standardError.write(Data("fuzz setup: cannot start the backend in \(dir): \(e)\n".utf8))
            exit(3)
        }
    }

    init(services: BackendServices, sessionID: String) {
        self.services = services
        self.sessionID = sessionID
        responder = BackendApp.buildRouter(services: services).buildResponder()
        channel = NIOAsyncTestingChannel()
    }

    /// Sends one request through the router as the HTTP server would (errors become their status,
    /// the body is written out in full) and returns the status and body.
    public func send(_ method: HTTPRequest.Method, _ pathAndQuery: String, body: [UInt8] = [], contentType: String? = nil, authorized: Bool = true) async -> (status: Int, body: [UInt8]) {
        var head = HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1:3000", path: pathAndQuery)
        if authorized {
            head.headerFields[.authorization] = "Bearer \(Self.apiKey)"
            head.headerFields[.cookie] = "evalforge_session=\(sessionID)"  // the web UI's session
        }
        if let contentType { head.headerFields[.contentType] = contentType }
        if !body.isEmpty { head.headerFields[.contentLength] = String(body.count) }
        let request = Request(head: head, body: RequestBody(buffer: ByteBuffer(bytes: body)))
        let context = BackendRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: Logger(label: "evalforge.fuzz.request", factory: { _ in SwiftLogNoOpLogHandler() })))
        do {
            let response = try await responder.respond(to: request, context: context)
            let sink = BodySink()
            try? await response.body.write(BodyCollector(sink: sink))
            return (response.status.code, sink.bytes)
        } catch let e as any HTTPResponseError {
            return (e.status.code, [])
        } catch {
            return (500, Array("\(error)".utf8))
        }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Collects a response body as the server would write it (so a lazily written body runs too).
struct BodyCollector: ResponseBodyWriter {
    let sink: BodySink
    mutating func write(_ buffer: ByteBuffer) async throws { sink.bytes += buffer.readableBytesView }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// Where `BodyCollector` puts the bytes (the writer itself is consumed by `ResponseBody.write`).
final class BodySink: @unchecked Sendable {
    var bytes: [UInt8] = []
}

/// Forwarded batches exactly as a collector sends them: the seed requests through the collector
/// pipeline (in a scratch WAL), sealed and encoded by the forwarder's `BatchEncoder`, uncompressed.
public enum BatchSeeds {
    public static func batches() throws -> [(name: String, bytes: [UInt8])] {
        var out: [(String, [UInt8])] = []
        // The backend refuses a batch whose resources name another project than the key's (the
        // project comes from the key): the seeds' proj-a / proj-b become the key's project here.
        let all = OTLPSeeds.requests().map { name, request -> (String, OTLPSeeds.Request) in
            var r = request
            for i in r.resourceSpans.indices {
                for j in r.resourceSpans[i].resource.attributes.indices where r.resourceSpans[i].resource.attributes[j].key == "evalforge.project" {
                    r.resourceSpans[i].resource.attributes[j].value.stringValue = "default"
                }
            }
            return (name, r)
        }
        let groups: [(String, [(String, OTLPSeeds.Request)])] = all.map { ($0.0, [$0]) } + [("all", all)]
        for (i, (name, requests)) in groups.enumerated() {
            var c = CollectorConfiguration.default
            c.queueDirectory = Fuzz.scratchDirectory("seed-wal")
            c.fsync = "never"
            c.collectorID = "fuzz-seed-\(i)"
            c.sampling.decisionWait = .milliseconds(1)
            c.sampling.rootGrace = .milliseconds(0)
            let p = try CollectorPipeline(configuration: c)
            for (_, r) in requests {
                let body: [UInt8] = try r.serializedBytes()
                _ = try Fuzz.blocking { try await p.ingest(protobuf: body) }.get()
            }
            while let batch = p.seal(force: true) {
                out.append((name, try BatchEncoder.encode(batch, collectorID: c.collectorID, epoch: p.instanceEpoch, coding: .identity, level: 0)))
            }
            p.wal.close()
        }
        return out
    }
}
