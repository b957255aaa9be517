/// rANS constants shared by encoder and decoder: 32-bit state kept in `[2^23, 2^31)`, byte-wise
/// renormalisation, 16-bit probabilities. With `L / 2^16 = 2^7` the coding loss of rANS's
/// integer approximation stays far below 0.1 % (measured in the tests), unlike 16-bit-word
/// renormalisation with `L = 2^16`, where it reaches several percent for probable symbols.
enum RANS {
    static let lowerBound: UInt32 = 1 << 23
    static let stateBytes = 4
}

/// Encodes symbols with rANS. Symbols are pushed in decoding order; rANS codes them last to
/// first, so the encoder records each step and runs them backwards in `finish()`.
public struct RANSEncoder: Sendable {
    public let tables: CDFTableSet
    // One step per entry: start << 16 | frequency. Both fit 16 bits (every table has ≥ 2
    // symbols of frequency ≥ 1, so frequency ≤ 2^16 − 1 and start ≤ 2^16 − 1).
    private var steps: [UInt32] = []

    public init(tables: CDFTableSet, reservingCapacity capacity: Int = 0) {
        self.tables = tables
        steps.reserveCapacity(capacity)
    }

    /// Number of rANS steps recorded so far (symbols plus escape fields).
    public var stepCount: Int { steps.count }

    /// Appends `value` coded with table `table`; values outside the table's regular range are
    /// coded as its escape followed by `EscapeCode` fields.
    public mutating func encode(_ value: Int32, table: Int) throws(EntropyCodingError) {
        guard table >= 0, table < tables.count else {
            throw .tableIndexOutOfRange(index: Int32(truncatingIfNeeded: table), tableCount: tables.count)
        }
        let base = tables.bases[table], length = tables.lengths[table]
        let index = Int(value) - Int(tables.offsets[table])
        if index >= 0, index < length - 1 {
            let start = tables.flatCDF[base + index]
            steps.append(start << 16 | (tables.flatCDF[base + index + 1] - start))
            return
        }
        guard value.magnitude < EscapeCode.magnitudeLimit else {
            throw .valueOutOfRange(value: value, limit: EscapeCode.magnitudeLimit)
        }
        let start = tables.flatCDF[base + length - 1]
        steps.append(start << 16 | (CDFTable.total - start))
        let below = index < 0
        let distance = below ? -index - 1 : index - (length - 1)          // d ≥ 0
        let payload = UInt32(distance + 1)
        let n = 32 - payload.leadingZeroBitCount                          // 1...22
        appendBits(below ? 1 : 0, count: 1)
        appendBits(UInt32(n - 1), count: EscapeCode.lengthFieldBits)
        var remaining = n - 1
        if remaining > EscapeCode.chunkBits {
            remaining -= EscapeCode.chunkBits
            appendBits(payload >> UInt32(EscapeCode.chunkBits), count: remaining)
            remaining = EscapeCode.chunkBits
        }
        if remaining > 0 { appendBits(payload & ((1 << UInt32(remaining)) - 1), count: remaining) }
    }

    /// A bypass field of `count` (1...16) bits.
    private mutating func appendBits(_ bits: UInt32, count: Int) {
        let shift = UInt32(16 - count)
        let value = bits & ((1 << UInt32(count)) - 1)
        steps.append((value << shift) << 16 | (1 << shift))
    }

    /// The coded bytes: everything pushed so far, decodable by `RANSDecoder` in push order.
    public func finish() -> [UInt8] {
        // Each step emits at most 2 bytes (x < 2^31 and x_max = freq · 2^15 ≥ 2^15), so the
        // buffer is filled from its end without bounds surprises.
        let capacity = steps.count * 2 + RANS.stateBytes
        var out = [UInt8](repeating: 0, count: capacity)
        var position = capacity
        var x = RANS.lowerBound
        out.withUnsafeMutableBufferPointer { buffer in
            for step in steps.reversed() {
                let start = step >> 16, freq = step & 0xFFFF
                let limit = freq << 15             // ((L >> 16) << 8) · freq
                while x >= limit {
                    position -= 1
                    buffer[position] = UInt8(truncatingIfNeeded: x)
                    x >>= 8
                }
                x = ((x / freq) << 16) + (x % freq) + start
            }
            // The final state opens the stream, little-endian.
            position -= RANS.stateBytes
            for i in 0..<RANS.stateBytes {
                buffer[position + i] = UInt8(truncatingIfNeeded: x >> UInt32(8 * i))
            }
        }
        return Array(out[position...])
    }
}
