import EvalForgeCore

// The EvalForgeCore types SDK users name, and only those: token counts for a span, prices for cost
// overrides, the W3C ids of a span's context and the GenAI attribute names. EvalForgeCore itself is
// not re-exported (its gzip, hex, Retry-After and checked-arithmetic helpers are the SDK's and the
// collector's internals), so `import EvalForgeSDK` brings the SDK's surface and nothing else.

/// Token counts of one model call (`span.usage = TokenUsage(input:output:)`).
public typealias TokenUsage = EvalForgeCore.TokenUsage
/// The price of one model, per million tokens (`configuration.cost.overrides["m"] = ModelPrice(…)`).
public typealias ModelPrice = EvalForgeCore.ModelPrice
/// The versioned built-in price table costs are computed from.
public typealias PriceTable = EvalForgeCore.PriceTable
/// A W3C trace id.
public typealias TraceID = EvalForgeCore.TraceID
/// A W3C span id.
public typealias SpanID = EvalForgeCore.SpanID
/// A W3C `traceparent` header value.
public typealias TraceParent = EvalForgeCore.TraceParent
/// The OTel GenAI attribute names the SDK records (for attributes set by hand).
public typealias GenAIKeys = EvalForgeCore.GenAIKeys
/// A model's price from a day on (`PriceTable.history(for:)`).
public typealias DatedPrice = EvalForgeCore.DatedPrice
/// Loads a JSON price file (`configuration.cost.priceTable = try PriceFile.load(path:)`).
public typealias PriceFile = EvalForgeCore.PriceFile
/// What is wrong with a price file, and where.
public typealias PriceFileError = EvalForgeCore.PriceFileError
