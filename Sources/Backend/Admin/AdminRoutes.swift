import EvalForgeModel
import EvalForgeStore
import Evaluation
import Foundation
import Hummingbird
import NIOCore

/// The admin API under `/api/admin` (docs/access-control.md): projects (instance admin token only)
/// and, per project, keys and the audit log (the admin token, or a key with the `admin` scope of
/// that project). Every change writes its audit entry in the same transaction.
enum AdminRoutes {
    /// Largest admin request body.
    static let maxBody = 64 * 1024

    static func addRoutes(to group: RouterGroup<BackendRequestContext>, services: BackendServices) {
        let projects = services.projects
        let store = services.store
        let defaultProject = services.configuration.defaultProjectID
        let defaultRetention = services.configuration.defaultRetentionDays

        group.get("projects") { _, ctx in
            try await call {
                _ = try requireInstanceAdmin(ctx)
                return ProjectList(projects: try await projects.projects().map { ProjectView($0, defaultRetentionDays: defaultRetention) })
            }
        }
        group.post("projects") { req, ctx in
            try await call(.created) {
                let actor = try requireInstanceAdmin(ctx)
                let b = try await decode(ProjectBody.self, req)
                guard let name = b.name else { throw AccessError.invalid("body: missing field 'name'") }
                return ProjectView(try await projects.createProject(name: name, id: b.id, actor: actor), defaultRetentionDays: defaultRetention)
            }
        }
        group.patch("projects/:project") { req, ctx in
            try await call {
                let actor = try requireInstanceAdmin(ctx)
                let b = try await decode(ProjectBody.self, req)
                guard let name = b.name else { throw AccessError.invalid("body: missing field 'name'") }
                return ProjectView(try await projects.renameProject(id: try pathValue(ctx, "project"), to: name, actor: actor), defaultRetentionDays: defaultRetention)
            }
        }
        group.delete("projects/:project") { _, ctx in
            try await call {
                let actor = try requireInstanceAdmin(ctx)
                let id = try pathValue(ctx, "project")
                guard id != defaultProject else {
                    throw AccessError.conflict("'\(id)' is this backend's default project (--default-project); it is recreated at every start and cannot be deleted")
                }
                guard try await projects.project(id: id) != nil else { throw AccessError.notFound("no project with id '\(id)'") }
                // Keys first (nothing new arrives), then telemetry (retryable: a failure leaves the
                // project listed, so the delete can be repeated), then the metadata and the project.
                try await projects.revokeAllKeys(projectID: id)
                try await storeCall { try await store.deleteProject(projectID: id) }
                try await projects.deleteProject(id: id, actor: actor)
                // A request authenticated just before its key was revoked may have stored rows since.
                do {
                    if try await store.countSpans(projectID: id, fromUnixNanos: nil, toUnixNanos: nil) > 0 {
                        try await store.deleteProject(projectID: id)
                        try await CacheGenerations.bump(projects.db, .telemetryDeletes)
                    }
                } catch {
                    ctx.logger.warning("rows of a deleted project stored during its deletion remain", metadata: ["project": "\(id)", "error": "\(error)"])
                }
                return Deleted(deleted: id)
            }
        }

        // Retention: the instance admin or a key with the project's `admin` scope.
        group.get("projects/:project/retention") { _, ctx in
            try await call {
                let id = try await requireProjectAdmin(ctx, projects, try pathValue(ctx, "project"))
                guard let p = try await projects.project(id: id) else { throw AccessError.notFound("no project with id '\(id)'") }
                return RetentionView(p, defaultRetentionDays: defaultRetention)
            }
        }
        group.put("projects/:project/retention") { req, ctx in
            try await call {
                let id = try await requireProjectAdmin(ctx, projects, try pathValue(ctx, "project"))
                let b: RetentionBody
                do {
                    b = try await decode(RetentionBody.self, req)
                } catch let e as EvaluationError where !e.isTooLarge {
                    // e.g. 1e300 or 2.5, which the decoder reports without the field's name.
                    throw AccessError.invalid("retention_days (0 to \(Project.retentionDaysRange.upperBound) days, or null): \(e.message)")
                }
                return RetentionView(try await projects.setRetention(id: id, days: b.days, actor: ctx.access?.actor ?? ""), defaultRetentionDays: defaultRetention)
            }
        }
        group.get("projects/:project/keys") { _, ctx in
            try await call {
                let project = try await requireProjectAdmin(ctx, projects, try pathValue(ctx, "project"))
                return KeyList(keys: try await projects.keys(projectID: project).map(KeyView.init))
            }
        }
        group.post("projects/:project/keys") { req, ctx in
            try await call(.created) {
                let project = try await requireProjectAdmin(ctx, projects, try pathValue(ctx, "project"))
                let b = try await decode(KeyBody.self, req)
                guard let names = b.scopes else { throw AccessError.invalid("body: missing field 'scopes' (one or more of \(Scope.allCases.map(\.rawValue).joined(separator: ", ")))") }
                let scopes = try Scope.parse(names)
                var seconds: Int64?
                if let days = b.expiresInDays {
                    guard (1...3660).contains(days) else { throw AccessError.invalid("expires_in_days: expected 1…3660, got \(days)") }
                    seconds = Int64(days) * 86_400
                }
                let (key, record) = try await projects.createKey(projectID: project, name: b.name ?? "key", scopes: scopes, expiresInSeconds: seconds, actor: ctx.access?.actor ?? "")
                return CreatedKey(key: key, record: KeyView(record))
            }
        }
        group.post("keys/:id/revoke") { _, ctx in
            try await call {
                let id = try pathValue(ctx, "id")
                let scope = try keyProjectScope(ctx)
                return KeyView(try await projects.revokeKey(id: id, projectID: scope, actor: ctx.access?.actor ?? ""))
            }
        }
        group.post("keys/:id/rotate") { req, ctx in
            try await call(.created) {
                let id = try pathValue(ctx, "id")
                let scope = try keyProjectScope(ctx)
                let b = try await decode(RotateBody.self, req)
                let hours = b.overlapHours ?? 24
                guard (0...87_600).contains(hours) else { throw AccessError.invalid("overlap_hours: expected 0…87600, got \(hours)") }
                let r = try await projects.rotateKey(id: id, overlapSeconds: Int64(hours) * 3600, projectID: scope, actor: ctx.access?.actor ?? "")
                return RotatedKey(key: r.key, record: KeyView(r.record), old: KeyView(r.old))
            }
        }

        group.get("audit") { req, ctx in
            try await call {
                let q = req.uri.queryParameters
                var project = q.get("project")
                if ctx.access?.isInstanceAdmin != true {
                    // A project's admin key sees its own project's entries.
                    guard let own = ctx.project?.id else { throw HTTPError(.forbidden, message: "the audit log needs the admin token or a key with the 'admin' scope") }
                    if let p = project, p != own { throw HTTPError(.forbidden, message: "this key may only read the audit log of project '\(own)'") }
                    project = own
                }
                let limitText = q.get("limit") ?? "100"
                guard let limit = Int(limitText), (1...1000).contains(limit) else { throw AccessError.invalid("limit: expected 1…1000, got '\(limitText.prefix(32))'") }
                var before: Int64?
                if let b = q.get("before") {
                    guard let v = Int64(b), v > 0 else { throw AccessError.invalid("before: expected a positive entry number, got '\(b.prefix(32))'") }
                    before = v
                }
                let entries = try await projects.auditLog(projectID: project, limit: limit, beforeSeq: before)
                return AuditList(entries: entries.map(AuditView.init), nextBefore: entries.count == limit ? entries.last?.seq : nil)
            }
        }
    }

    // MARK: Authorization

    /// The admin token's actor; 403 for anyone else.
    static func requireInstanceAdmin(_ ctx: BackendRequestContext) throws -> String {
        guard let access = ctx.access, access.isInstanceAdmin else {
            throw HTTPError(.forbidden, message: "managing projects needs the instance admin token (EVALFORGE_ADMIN_TOKEN)")
        }
        return access.actor
    }

    /// `projectID` when the caller may manage it: the admin token (the project must exist), or a
    /// key with the `admin` scope of that project.
    static func requireProjectAdmin(_ ctx: BackendRequestContext, _ projects: ProjectStore, _ projectID: String) async throws -> String {
        if ctx.access?.isInstanceAdmin == true {
            guard try await projects.project(id: projectID) != nil else { throw AccessError.notFound("no project with id '\(projectID)'") }
            return projectID
        }
        guard ctx.project?.id == projectID else { throw HTTPError(.forbidden, message: "this key may only manage the keys of its own project") }
        return projectID
    }

    /// The project a key operation is confined to: nil (any) for the admin token, else the key's own.
    static func keyProjectScope(_ ctx: BackendRequestContext) throws -> String? {
        if ctx.access?.isInstanceAdmin == true { return nil }
        guard let own = ctx.project?.id else { throw HTTPError(.forbidden, message: "managing keys needs the admin token or a key with the 'admin' scope") }
        return own
    }

    static func pathValue(_ ctx: BackendRequestContext, _ name: String) throws -> String {
        guard let v = ctx.parameters.get(name), !v.isEmpty, v.utf8.count <= 128 else {
            throw AccessError.invalid("missing or over-long '\(name)' in the path (at most 128 bytes)")
        }
        return v.removingPercentEncoding ?? v
    }

    // MARK: Bodies and answers

    struct ProjectBody: Decodable {
        var name: String?
        var id: String?
    }

    struct KeyBody: Decodable {
        var name: String?
        var scopes: [String]?
        var expiresInDays: Int?
        enum CodingKeys: String, CodingKey { case name, scopes, expiresInDays = "expires_in_days" }
    }

    struct RotateBody: Decodable {
        var overlapHours: Int?
        enum CodingKeys: String, CodingKey { case overlapHours = "overlap_hours" }
    }

    struct ProjectView: Encodable {
        var id: String
        var name: String
        /// Days kept (0 = forever), the project's own or the server default.
        var retentionDays: Int
        var createdAt: String
        init(_ p: Project, defaultRetentionDays: Int) {
            id = p.id
            name = p.name
            retentionDays = p.retention(default: defaultRetentionDays)
            createdAt = AdminRoutes.iso(p.createdUnixNanos)
        }
    }

    /// `{"retention_days": N}`: N days (1…3650), 0 to keep forever, null to follow the server
    /// default. The field must be present (a missing one is not taken for "default").
    struct RetentionBody: Decodable {
        var days: Int?
        enum CodingKeys: String, CodingKey { case days = "retention_days" }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            guard c.contains(.days) else {
                throw AccessError.invalid("body: missing field 'retention_days' (days to keep, 0 to keep forever, null for the server default)")
            }
            do {
                days = try c.decodeIfPresent(Int.self, forKey: .days)
            } catch is DecodingError {
                throw AccessError.invalid("retention_days: expected a whole number of days (0 to keep forever) or null for the server default")
            }
        }
    }

    /// A project's retention: days kept (0 = forever), whether they come from the server default
    /// (`--retention-days`), and that default.
    struct RetentionView: Encodable {
        var project: String
        var retentionDays: Int
        var source: String
        var defaultRetentionDays: Int
        init(_ p: Project, defaultRetentionDays: Int) {
            project = p.id
            retentionDays = p.retention(default: defaultRetentionDays)
            source = p.followsDefaultRetention ? "default" : "project"
            self.defaultRetentionDays = defaultRetentionDays
        }
    }

    struct ProjectList: Encodable { var projects: [ProjectView] }
    struct Deleted: Encodable { var deleted: String }

    struct KeyView: Encodable {
        var id: String
        var project: String
        var name: String
        var prefix: String
        var scopes: [String]
        var createdAt: String
        var expiresAt: String?
        var lastUsedAt: String?
        var status: String
        init(_ k: APIKeyRecord) {
            id = k.id
            project = k.projectID
            name = k.name
            prefix = k.prefix
            scopes = k.scopes.map(\.rawValue)
            createdAt = AdminRoutes.iso(k.createdUnixNanos)
            expiresAt = k.expiresUnixNanos.map(AdminRoutes.iso)
            lastUsedAt = k.lastUsedUnixNanos.map(AdminRoutes.iso)
            status = k.status
        }
    }

    struct KeyList: Encodable { var keys: [KeyView] }
    struct CreatedKey: Encodable {
        /// The plaintext, shown this once.
        var key: String
        var record: KeyView
    }
    struct RotatedKey: Encodable {
        var key: String
        var record: KeyView
        var old: KeyView
    }

    struct AuditView: Encodable {
        var seq: Int64
        var at: String
        var actor: String
        var action: String
        var project: String
        var target: String
        var detail: String
        init(_ e: AuditEntry) {
            seq = e.seq
            at = AdminRoutes.iso(e.atUnixNanos)
            actor = e.actor
            action = e.action
            project = e.projectID
            target = e.target
            detail = e.detail
        }
    }

    struct AuditList: Encodable {
        var entries: [AuditView]
        var nextBefore: Int64?
    }

    static func iso(_ nanos: Int64) -> String {
        Date(timeIntervalSince1970: Double(nanos / 1_000_000) / 1000).formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Decodes a JSON body (an empty body is `{}`), 413 past `maxBody`, 400 naming the field.
    static func decode<T: Decodable>(_ type: T.Type, _ req: Request) async throws -> T {
        if let length = req.headers[.contentLength].flatMap(Int.init), length == 0 { return try JSONDecoder().decode(T.self, from: Data("{}".utf8)) }
        return try await EvaluationRoutes.decode(T.self, req, limit: maxBody)
    }

    /// Runs a handler: `AccessError` becomes 400/404/409, `EvaluationError` from decoding 400/413,
    /// each with a JSON body naming the problem.
    static func call<T: Encodable>(_ status: HTTPResponse.Status = .ok, _ body: () async throws -> T) async throws -> Response {
        do {
            return try APIResponse.json(try await body(), status: status)
        } catch let e as AccessError {
            return EvaluationRoutes.errorResponse(e.isNotFound ? .notFound : e.isConflict ? .conflict : .badRequest, e.message)
        } catch let e as EvaluationError {
            return EvaluationRoutes.errorResponse(e.isTooLarge ? .contentTooLarge : .badRequest, e.message)
        } catch let e as HTTPError {
            return EvaluationRoutes.errorResponse(e.status, e.body ?? e.status.reasonPhrase)
        }
    }
}
