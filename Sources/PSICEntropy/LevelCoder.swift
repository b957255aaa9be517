/// Codes one section of latent symbols (a level, or z) as independent rANS substreams, each a
/// band of latent rows `[i·h/K, (i+1)·h/K)` over all channels, coded in the order channel, row,
/// column. Substreams are encoded and decoded in parallel.
public enum LevelCoder {
    /// Encoders split a section into at most this many substreams.
    public static let maxSubstreams = 16
    /// Encoders aim at this many symbols per substream, so that large levels use all cores.
    public static let symbolsPerSubstream = 8192
    /// Encoders give each substream at least this many bytes: a substream cost 12 bytes in format
    /// version 1 (table entry and coder state; ~6 in version 2), which at the lowest levels of a
    /// Kodak image was 2 % of the stream with three substreams a level, and 2 KB decode in
    /// ~0.15 ms (a whole Kodak stream, 37 KB, in 2–2.6 ms on this machine's CPU), too short for a
    /// split to pay.
    public static let bytesPerSubstream = 2048

    /// The substream count the size of a section of `shape` allows: the most an encoder uses.
    public static func substreamCount(for shape: LatentShape) -> Int {
        max(1, min(maxSubstreams, shape.height, shape.count / symbolsPerSubstream))
    }

    /// The encoder's substream count for a section of `shape` whose substreams, coded in
    /// `substreamCount(for: shape)` parts, take `bytes` bytes (container excluded): that count, fewer
    /// when the substreams would carry less than `bytesPerSubstream` each. It depends on the
    /// symbols alone, never on the machine.
    public static func substreamCount(for shape: LatentShape, bytes: Int) -> Int {
        max(1, min(substreamCount(for: shape), bytes / bytesPerSubstream))
    }

    /// Encodes a level: `symbols` and `tableIndexes` are CHW arrays of `shape`; element `k` is
    /// coded with table `tableIndexes[k]`. Returns the section's substreams (for `PSICStream.write`).
    public static func encode(symbols: [Int32], tableIndexes: [Int32], shape: LatentShape, tables: CDFTableSet,
                              substreams: Int? = nil) throws(EntropyCodingError) -> CodedSection {
        try checkIndexes(tableIndexes, shape: shape, tables: tables)
        return try encode(symbols: symbols, shape: shape, tables: tables, substreams: substreams, choice: .perElement(tableIndexes))
    }

    /// Encodes z: channel `c` is coded with table `c` (the factorised prior's per-channel tables).
    public static func encodeByChannel(symbols: [Int32], shape: LatentShape, tables: CDFTableSet,
                                       substreams: Int? = nil) throws(EntropyCodingError) -> CodedSection {
        try checkChannels(shape: shape, tables: tables)
        return try encode(symbols: symbols, shape: shape, tables: tables, substreams: substreams, choice: .perChannel)
    }

    /// Decodes a level section into CHW symbols of `shape`. Throws `StreamError` for bad
    /// substreams and `EntropyCodingError` for bad arguments.
    public static func decode(_ section: StreamSection, tableIndexes: [Int32], shape: LatentShape,
                              tables: CDFTableSet) throws -> [Int32] {
        try checkIndexes(tableIndexes, shape: shape, tables: tables)
        return try decode(section, shape: shape, tables: tables, choice: .perElement(tableIndexes))
    }

    /// Decodes the z section (table `c` for channel `c`).
    public static func decodeByChannel(_ section: StreamSection, shape: LatentShape, tables: CDFTableSet) throws -> [Int32] {
        try checkChannels(shape: shape, tables: tables)
        return try decode(section, shape: shape, tables: tables, choice: .perChannel)
    }

    // MARK: Implementation

    private enum TableChoice: Sendable {
        case perElement([Int32])
        case perChannel
    }

    private static func checkIndexes(_ indexes: [Int32], shape: LatentShape, tables: CDFTableSet) throws(EntropyCodingError) {
        guard shape.isValid else { throw .invalidShape(shape) }
        guard indexes.count == shape.count else {
            throw .shapeMismatch(what: "table indexes", expected: shape.count, found: indexes.count)
        }
        let count = Int32(tables.count)
        if let bad = indexes.first(where: { $0 < 0 || $0 >= count }) {
            throw .tableIndexOutOfRange(index: bad, tableCount: tables.count)
        }
    }

    private static func checkChannels(shape: LatentShape, tables: CDFTableSet) throws(EntropyCodingError) {
        guard shape.isValid else { throw .invalidShape(shape) }
        guard shape.channels <= tables.count else {
            throw .tableIndexOutOfRange(index: Int32(clamping: shape.channels - 1), tableCount: tables.count)
        }
    }

    private static func band(_ i: Int, of k: Int, rows: Int) -> Range<Int> {
        (i * rows / k)..<((i + 1) * rows / k)
    }

    private static func encode(symbols: [Int32], shape: LatentShape, tables: CDFTableSet, substreams: Int?,
                               choice: TableChoice) throws(EntropyCodingError) -> CodedSection {
        guard symbols.count == shape.count else {
            throw .shapeMismatch(what: "symbols", expected: shape.count, found: symbols.count)
        }
        if let k = substreams {
            return try encode(symbols: symbols, shape: shape, tables: tables, k: k, choice: choice)
        }
        // Sized by the symbol count first; a section that comes out small is coded again in fewer
        // substreams. Coding twice costs little: only small sections are coded again.
        let bySize = substreamCount(for: shape)
        let section = try encode(symbols: symbols, shape: shape, tables: tables, k: bySize, choice: choice)
        let k = substreamCount(for: shape, bytes: section.codedByteCount)
        return k == bySize ? section : try encode(symbols: symbols, shape: shape, tables: tables, k: k, choice: choice)
    }

    private static func encode(symbols: [Int32], shape: LatentShape, tables: CDFTableSet, k: Int,
                               choice: TableChoice) throws(EntropyCodingError) -> CodedSection {
        guard (1...min(StreamSection.maxSubstreams, shape.height)).contains(k) else {
            throw .invalidStreamContent(reason: "\(k) substreams for \(shape.height) rows")
        }
        let plane = shape.height * shape.width
        let results: [Result<[UInt8], EntropyCodingError>] = parallelMap(k) { i in
            let rows = band(i, of: k, rows: shape.height)
            var encoder = RANSEncoder(tables: tables, reservingCapacity: shape.channels * rows.count * shape.width)
            do throws(EntropyCodingError) {
                for c in 0..<shape.channels {
                    for r in rows {
                        let rowStart = c * plane + r * shape.width
                        for e in rowStart..<(rowStart + shape.width) {
                            let table: Int
                            switch choice {
                            case let .perElement(indexes): table = Int(indexes[e])
                            case .perChannel: table = c
                            }
                            try encoder.encode(symbols[e], table: table)
                        }
                    }
                }
            } catch {
                return .failure(error)
            }
            return .success(encoder.finish())
        }
        var parts: [[UInt8]] = []
        for r in results { parts.append(try r.get()) }
        return CodedSection(substreams: parts)
    }

    private static func decode(_ section: StreamSection, shape: LatentShape, tables: CDFTableSet,
                               choice: TableChoice) throws -> [Int32] {
        let k = section.substreamCount
        guard k <= shape.height else {
            throw StreamError.corrupt(reason: "\(section.location) has \(k) substreams for \(shape.height) rows")
        }
        let plane = shape.height * shape.width
        var output = [Int32](repeating: 0, count: shape.count)
        let failures: [RANSDecodingFailure?] = output.withUnsafeMutableBufferPointer { buffer in
            // Bands are disjoint, so substreams write disjoint elements.
            nonisolated(unsafe) let out = buffer
            return parallelMap(k) { i in
                var decoder = RANSDecoder(bytes: section.substream(i), tables: tables)
                let rows = band(i, of: k, rows: shape.height)
                for c in 0..<shape.channels {
                    for r in rows {
                        let rowStart = c * plane + r * shape.width
                        switch choice {
                        case let .perElement(indexes):
                            for e in rowStart..<(rowStart + shape.width) { out[e] = decoder.decode(table: Int(indexes[e])) }
                        case .perChannel:
                            for e in rowStart..<(rowStart + shape.width) { out[e] = decoder.decode(table: c) }
                        }
                    }
                }
                do throws(RANSDecodingFailure) { try decoder.finish() } catch { return error }
                return nil
            }
        }
        for (i, failure) in failures.enumerated() {
            if let failure {
                throw StreamError.corrupt(reason: "substream \(i) of \(section.location) does not decode: \(failure)")
            }
        }
        return output
    }
}
