/// Why a model's CDF tables were refused. Every case names the table (row) at fault, so the
/// message points at the exporter bug or damaged model file; the fix is to re-export the model.
public enum CDFTableError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The table set has no tables, or more than `CDFTableSet.maxTables`.
    case tableCountOutOfRange(count: Int, limit: Int)
    /// The padded arrays do not have the sizes `rows`, `stride` imply.
    case shapeMismatch(what: String, expected: Int, found: Int)
    /// A table's symbol count (escape included) is below 2 or does not fit the padded row.
    case lengthOutOfRange(table: Int, length: Int, stride: Int)
    /// A table's symbol values leave ±`CDFTable.valueLimit`.
    case offsetOutOfRange(table: Int, offset: Int, length: Int)
    /// The CDF does not start at 0.
    case doesNotStartAtZero(table: Int, found: Int32)
    /// The CDF does not end at 2^16.
    case doesNotEndAtTotal(table: Int, found: Int32)
    /// A symbol has frequency < 1 (the CDF is not strictly increasing).
    case zeroFrequency(table: Int, symbolIndex: Int)
    /// Entries after the table's last CDF value are not zero.
    case notZeroPadded(table: Int, position: Int)

    public var description: String {
        let fix = "re-export the model (Tools/train) or check that the model file is intact"
        switch self {
        case let .tableCountOutOfRange(count, limit):
            return "CDF table set has \(count) tables, expected 1...\(limit); \(fix)"
        case let .shapeMismatch(what, expected, found):
            return "CDF table \(what) has \(found) entries, expected \(expected); \(fix)"
        case let .lengthOutOfRange(table, length, stride):
            return "CDF table \(table) has \(length) symbols, expected 2...\(stride - 1) (row stride \(stride)); \(fix)"
        case let .offsetOutOfRange(table, offset, length):
            return "CDF table \(table) covers symbols \(offset)..<\(offset + length - 1), outside ±\(CDFTable.valueLimit); \(fix)"
        case let .doesNotStartAtZero(table, found):
            return "CDF table \(table) starts at \(found) instead of 0; \(fix)"
        case let .doesNotEndAtTotal(table, found):
            return "CDF table \(table) ends at \(found) instead of \(CDFTable.total); \(fix)"
        case let .zeroFrequency(table, index):
            return "CDF table \(table) gives symbol index \(index) a frequency below 1; \(fix)"
        case let .notZeroPadded(table, position):
            return "CDF table \(table) has a non-zero padding entry at \(position); \(fix)"
        }
    }
}
