/// A resource whose `evalforge.project` names another project than the one the data is stored
/// under (the API key's). Ingest refuses such a request whole instead of storing the spans under
/// the key's project: "the project comes from the key" (docs/access-control.md).
public struct ForeignProjectError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Index of the offending `resource_spans` entry.
    public let resourceIndex: Int
    /// The project the resource names.
    public let named: String

    public init(resourceIndex: Int, named: String) {
        self.resourceIndex = resourceIndex
        self.named = named
    }

    /// Whether a resource naming `named` belongs to the project with this id and name.
    public static func accepts(_ named: String, projectID: String, projectName: String) -> Bool {
        named == projectID || named == projectName
    }

    /// A message naming both projects and the fix, for the project `projectID` (`projectName`).
    public func message(projectID: String, projectName: String) -> String {
        let shown = named.utf8.count > 128 ? String(named.prefix(128)) + "…" : named
        let key = projectName == projectID ? "'\(projectID)'" : "'\(projectName)' (id \(projectID))"
        return "resource_spans[\(resourceIndex)] names project '\(shown)' (evalforge.project) but the API key belongs to project \(key); send it with a key of that project, or remove the attribute"
    }

    public var description: String { "resource_spans[\(resourceIndex)] names project '\(named.prefix(128))'" }
}
