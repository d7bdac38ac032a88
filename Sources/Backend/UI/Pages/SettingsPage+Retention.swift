import EvalForgeStore
import Foundation
import Hummingbird

/// The retention card of the settings page: days kept, forever, or the server default; set through
/// `ProjectStore.setRetention` as the admin API does (docs/storage.md, "Retention").
extension SettingsPage {
    func setRetention(_ request: Request, context: BackendRequestContext) async throws -> Response {
        try Self.requireSameOrigin(request)
        let project = try context.requireProject()
        let form = try await Self.form(request)
        do {
            // Empty: follow the server default; 0: keep forever; else days.
            var days: Int?
            if let text = form.string("retention_days")?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
                guard let d = Int(text) else {
                    throw AccessError.invalid("retention_days: expected 0 (keep forever) or \(Project.retentionDaysRange.lowerBound) to \(Project.retentionDaysRange.upperBound) days, got '\(text.prefix(32))'")
                }
                days = d
            }
            _ = try await projects.setRetention(id: project.id, days: days, actor: context.access?.actor ?? "ui")
        } catch let e as AccessError {
            return try await render(context: context, created: nil, error: e.message, status: e.isNotFound ? .notFound : .badRequest)
        }
        return Response(status: .seeOther, headers: [.location: "/settings"])
    }

    static func retentionCard(_ project: Project, defaultDays: Int) -> HTML {
        let days = project.retention(default: defaultDays)
        let kept = days == 0 ? "everything, forever" : "\(days) day\(days == 1 ? "" : "s")"
        let source = project.followsDefaultRetention ? " (the server default, --retention-days)" : ""
        let value = project.followsDefaultRetention ? "" : "\(days)"
        return """
        <form method="post" action="/settings/retention" class="card pad" id="retention" style="margin-bottom:16px">\(Layout.csrfField)
          <strong>Retention</strong>
          <p class="sub" id="retention-current">Keeps \(kept)\(source). Older whole days (UTC) of traces, rollups and scores are deleted within the hour.</p>
          <p><label>Days to keep <input name="retention_days" type="number" min="0" max="\(Project.retentionDaysRange.upperBound)" value="\(value)"></label>
            <span class="sub">0 keeps everything; empty follows the server default (\(defaultDays == 0 ? "forever" : "\(defaultDays) days")).</span></p>
          <button type="submit">Save retention</button>
        </form>
        """
    }
}
