import Foundation

/// What coding each regular value of each table in a set costs, `−log2(f / 2^16)` bits, for an
/// encoder that weighs symbols by their price (the rate-distortion quantiser). Escaped values
/// have no entry: their cost depends on the bypass fields, and an encoder that only ever chooses
/// between regular values does not need it.
public struct SymbolCosts: Sendable {
    private let bits: [Double]      // table t's regular values, from bases[t]
    private let bases: [Int]
    private let offsets: [Int32]
    private let regularCounts: [Int32]

    /// The costs of every regular value of every table in `tables`.
    public init(_ tables: CDFTableSet) {
        var bits: [Double] = [], bases: [Int] = []
        for t in tables.tables {
            bases.append(bits.count)
            // The same expression as the exporter's `CDFTables.cost_table` for regular values, so both price alike.
            for i in 0..<(t.length - 1) { bits.append(-log2(Double(t.frequency(ofIndex: i)) / Double(CDFTable.total))) }
        }
        self.bits = bits
        self.bases = bases
        offsets = tables.tables.map(\.offset)
        regularCounts = tables.tables.map { Int32($0.length - 1) }
    }

    /// Bits of `value` in table `table`, or nil when the table escapes it.
    @inline(__always)
    public func bits(table: Int, value: Int32) -> Double? {
        let i = Int64(value) - Int64(offsets[table])
        guard i >= 0, i < Int64(regularCounts[table]) else { return nil }
        return bits[bases[table] + Int(i)]
    }
}
