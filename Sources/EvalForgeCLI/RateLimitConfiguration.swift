import ArgumentParser
import Backend
import Foundation

extension BackendConfigurationLoader {
    /// The rate-limit tiers from the tier file (`--rate-limit-tiers`, env `EVALFORGE_RATE_LIMIT_TIERS`),
    /// the default tier (`--default-tier`, env `EVALFORGE_DEFAULT_TIER`) and the switch
    /// `EVALFORGE_RATE_LIMITS=off`; flags win. A bad file or an unknown tier stops the start naming it.
    static func rateLimits(environment env: [String: String], tiersFile: String?, defaultTier: String?) throws -> RateLimitTiers {
        var tiers = RateLimitTiers()
        if let text = env["EVALFORGE_RATE_LIMITS"] {
            switch text.lowercased() {
            case "1", "true", "yes", "on", "": tiers.enabled = true
            case "0", "false", "no", "off": tiers.enabled = false
            default: throw ValidationError("EVALFORGE_RATE_LIMITS=\(text.prefix(32)): expected on or off")
            }
        }
        if let path = tiersFile ?? env["EVALFORGE_RATE_LIMIT_TIERS"].flatMap({ $0.isEmpty ? nil : $0 }) {
            do { tiers = try RateLimitTiers.load(path: path, base: tiers) } catch { throw ValidationError("--rate-limit-tiers / EVALFORGE_RATE_LIMIT_TIERS: \(error.message)") }
        }
        if let name = defaultTier ?? env["EVALFORGE_DEFAULT_TIER"].flatMap({ $0.isEmpty ? nil : $0 }) {
            do { tiers.defaultTier = try tiers.tier(named: name).name } catch { throw ValidationError("--default-tier / EVALFORGE_DEFAULT_TIER: \(error.message)") }
        }
        return tiers
    }
}
