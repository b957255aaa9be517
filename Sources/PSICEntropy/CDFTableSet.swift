/// A model's family of CDF tables (its Gaussian tables, one per scale, or one z table per channel), validated
/// and laid out flat for the coder's inner loops.
public struct CDFTableSet: Sendable {
    /// Most tables a set may hold (a model has 64 or 128 Gaussian and N z tables).
    public static let maxTables = 4096

    /// The tables, by index.
    public let tables: [CDFTable]

    // Flat copies for the coder: one array access per lookup instead of nested arrays.
    let flatCDF: [UInt32]        // every table's cdf, concatenated
    let bases: [Int]             // start of table t in flatCDF
    let lengths: [Int]
    let offsets: [Int32]
    let buckets: [UInt16]        // table t's bucket starts at t << bucketBits

    /// Number of tables.
    public var count: Int { tables.count }
    public subscript(i: Int) -> CDFTable { tables[i] }

    /// Validates and indexes tables as the model file stores them: `rows` rows of `stride` Int32
    /// (`cdf`, zero-padded), each table's symbol count incl. escape (`lengths`) and first symbol
    /// value (`offsets`).
    public init(rows: Int, stride: Int, cdf: [Int32], lengths: [Int32], offsets: [Int32]) throws(CDFTableError) {
        guard (1...Self.maxTables).contains(rows) else { throw .tableCountOutOfRange(count: rows, limit: Self.maxTables) }
        guard stride >= 3, stride <= Int(CDFTable.total) + 1 else {
            throw .shapeMismatch(what: "row stride", expected: 3, found: stride)
        }
        guard cdf.count == rows * stride else { throw .shapeMismatch(what: "cdf", expected: rows * stride, found: cdf.count) }
        guard lengths.count == rows else { throw .shapeMismatch(what: "lengths", expected: rows, found: lengths.count) }
        guard offsets.count == rows else { throw .shapeMismatch(what: "offsets", expected: rows, found: offsets.count) }
        var tables: [CDFTable] = []
        for r in 0..<rows {
            tables.append(try CDFTable(cdf: cdf[(r * stride)..<((r + 1) * stride)], length: Int(lengths[r]),
                                       offset: offsets[r], index: r))
        }
        self.init(tables: tables)
    }

    /// A set of already validated tables.
    public init(tables: [CDFTable]) {
        precondition(!tables.isEmpty && tables.count <= Self.maxTables, "a table set holds 1...\(Self.maxTables) tables")
        self.tables = tables
        var flat: [UInt32] = [], bases: [Int] = [], buckets: [UInt16] = []
        for t in tables {
            bases.append(flat.count)
            flat.append(contentsOf: t.cdf)
            buckets.append(contentsOf: t.bucketStarts())
        }
        flatCDF = flat
        self.bases = bases
        lengths = tables.map(\.length)
        offsets = tables.map(\.offset)
        self.buckets = buckets
    }

    /// The sampler's inverse CDF on table `table` (see `CDFTable.symbol(forCumulative:)`).
    @inline(__always)
    public func sample(table: Int, uniform16 u: UInt16) -> Int32 {
        offsets[table] + Int32(min(index(table: table, slot: UInt32(u)), lengths[table] - 2))
    }

    /// Symbol index of `slot` in table `table`: bucket start, then a forward scan (≤ 64 steps,
    /// usually 0–1, since a bucket spans 64 slots and every symbol at least one).
    @inline(__always)
    func index(table: Int, slot: UInt32) -> Int {
        let base = bases[table]
        var s = Int(buckets[(table << CDFTable.bucketBits) | Int(slot >> CDFTable.bucketShift)])
        while flatCDF[base + s + 1] <= slot { s += 1 }
        return s
    }
}
