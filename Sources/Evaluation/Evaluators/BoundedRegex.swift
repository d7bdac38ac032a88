import CPCRE2
import Dispatch
import Foundation

/// A user's regular expression (an evaluator's `pattern`, a JSON schema's `pattern`), compiled by
/// PCRE2 in UTF mode with Unicode character classes, and matched with bounds: a match that needs
/// more than `matchLimit` backtracking steps, `depthLimit` nested backtracks or `heapLimitKiB` of
/// memory stops with an error instead of running for minutes (`^(a+)+$` against "aaa…!" is
/// exponential in a backtracking engine such as ICU's, which has no such limit).
///
/// Matching is synchronous CPU work: evaluators that match run it through `OffPool`, never on
/// Swift's cooperative pool, so a slow match cannot stall the backend's other requests.
public final class BoundedRegex: @unchecked Sendable {
    // @unchecked: the compiled code and the match context are written only in init and read-only
    // afterwards; PCRE2 documents both as safe to share between threads for matching.

    /// The limits of every match. The match limit bounds the time of one match (about 10–50 ms on
    /// this hardware at 1,000,000), the depth and heap limits its memory.
    static let matchLimit: UInt32 = 1_000_000
    static let depthLimit: UInt32 = 100_000
    static let heapLimitKiB: UInt32 = 64 * 1024
    /// Longest pattern accepted (compile time and memory grow with it).
    static let maxPatternBytes = 4096

    public let pattern: String
    private let code: OpaquePointer
    private let matchContext: OpaquePointer

    /// Compiles `pattern`; the error says why it is not a valid expression and where.
    public init(_ pattern: String) throws(EvaluationError) {
        self.pattern = pattern
        let bytes = Array(pattern.utf8)
        guard !bytes.isEmpty else { throw .invalidArgument("the pattern is empty") }
        guard bytes.count <= Self.maxPatternBytes else { throw .invalidArgument("the pattern has \(bytes.count) bytes; at most \(Self.maxPatternBytes) are accepted") }
        var errorCode: Int32 = 0
        var errorOffset = 0
        let compiled = bytes.withUnsafeBufferPointer { b in
            pcre2_compile_8(b.baseAddress, b.count, PCRE2_UTF | PCRE2_UCP, &errorCode, &errorOffset, nil)
        }
        guard let compiled else {
            throw .invalidArgument("'\(pattern.prefix(100))' is not a valid regular expression: \(Self.message(errorCode)) at offset \(errorOffset)")
        }
        guard let context = pcre2_match_context_create_8(nil) else {
            pcre2_code_free_8(compiled)
            throw .unavailable("PCRE2 could not allocate a match context")
        }
        pcre2_set_match_limit_8(context, Self.matchLimit)
        pcre2_set_depth_limit_8(context, Self.depthLimit)
        pcre2_set_heap_limit_8(context, Self.heapLimitKiB)
        code = compiled
        matchContext = context
    }

    deinit {
        pcre2_match_context_free_8(matchContext)
        pcre2_code_free_8(code)
    }

    /// Whether `text` contains a match; an error when a limit stopped the match or `deadline` has passed.
    func matches(_ text: String, deadline: ContinuousClock.Instant? = nil) -> Result<Bool, EvaluationError> {
        if let deadline, ContinuousClock.now >= deadline {
            return .failure(.limitExceeded("regex /\(pattern.prefix(60))/: the evaluation's deadline of \(OffPool.deadline) passed before this match"))
        }
        var text = text
        let rc: Int32 = text.withUTF8 { buf in
            guard let data = pcre2_match_data_create_8(1, nil) else { return PCRE2_ERROR_NOMEMORY }
            defer { pcre2_match_data_free_8(data) }
            if let base = buf.baseAddress {
                // Swift strings are valid UTF-8: the check PCRE2 would make again is skipped.
                return pcre2_match_8(code, base, buf.count, 0, PCRE2_NO_UTF_CHECK, data, matchContext)
            }
            let empty: [UInt8] = [0]
            return empty.withUnsafeBufferPointer { pcre2_match_8(code, $0.baseAddress, 0, 0, PCRE2_NO_UTF_CHECK, data, matchContext) }
        }
        if rc >= 0 { return .success(true) }
        if rc == PCRE2_ERROR_NOMATCH { return .success(false) }
        let what: String
        switch rc {
        case PCRE2_ERROR_MATCHLIMIT: what = "more than \(Self.matchLimit) backtracking steps"
        case PCRE2_ERROR_DEPTHLIMIT: what = "backtracking deeper than \(Self.depthLimit)"
        case PCRE2_ERROR_HEAPLIMIT: what = "more than \(Self.heapLimitKiB / 1024) MiB of backtracking memory"
        default: what = Self.message(rc)
        }
        return .failure(.limitExceeded("regex /\(pattern.prefix(60))/ on an output of \(text.utf8.count) bytes needs \(what) (catastrophic backtracking); simplify the pattern, e.g. avoid nested quantifiers such as (a+)+"))
    }

    private static func message(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBufferPointer { pcre2_get_error_message_8(code, $0.baseAddress, $0.count) }
        return n > 0 ? String(decoding: buffer.prefix(Int(n)), as: UTF8.self) : "PCRE2 error \(code)"
    }
}

/// Runs CPU-bound work on user-controlled input (regex matching, schema validation with patterns)
/// on a dedicated queue instead of Swift's cooperative pool: at most `slots` jobs run at once (the
/// others wait without holding a thread), and every job gets `deadline`, checked between matches,
/// while each single match is bounded by `BoundedRegex`'s limits.
enum OffPool {
    static let deadline: Duration = .seconds(2)
    private static let queue = DispatchQueue(label: "evalforge.evaluation.offpool", qos: .utility, attributes: .concurrent)
    private static let slots = AsyncSemaphore(limit: max(2, ProcessInfo.processInfo.activeProcessorCount))

    /// Runs `work(deadline)` on the dedicated queue; nil when the task was cancelled while waiting
    /// for a slot.
    static func run<T: Sendable>(_ work: @escaping @Sendable (ContinuousClock.Instant) -> T) async -> T? {
        guard await slots.acquire() else { return nil }
        return await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            queue.async {
                let result = work(ContinuousClock.now + deadline)
                slots.release()
                c.resume(returning: result)
            }
        }
    }
}
