/// Integer CDF tables as stored in a model file: `rows` tables of up to `stride` entries each
/// (zero-padded), with each table's symbol count (escape included) and first symbol value.
/// The entropy coder validates and indexes them; this type only carries them.
public struct CDFTableData: Sendable {
    public let rows: Int
    public let stride: Int
    public let cdf: [Int32]
    public let lengths: [Int32]
    public let offsets: [Int32]

    public init(rows: Int, stride: Int, cdf: [Int32], lengths: [Int32], offsets: [Int32]) {
        self.rows = rows
        self.stride = stride
        self.cdf = cdf
        self.lengths = lengths
        self.offsets = offsets
    }
}
