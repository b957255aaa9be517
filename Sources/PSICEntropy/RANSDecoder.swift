/// Why a substream did not decode consistently. The decoder never traps on bad bytes: it keeps
/// producing (garbage) symbols with bounded work and reports the first failure at `finish()`.
public enum RANSDecodingFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The first 4 bytes are not a valid rANS state (or there are fewer than 4).
    case invalidInitialState
    /// Decoding needed more bytes than the substream holds.
    case exhausted
    /// An escape's length field or value is out of range.
    case invalidEscape
    /// All symbols were decoded, but bytes remain or the final state differs from the
    /// encoder's initial one: the data is not what the encoder wrote.
    case inconsistentEnd

    public var description: String {
        switch self {
        case .invalidInitialState: return "the substream does not start with a valid coder state"
        case .exhausted: return "the substream ends before its last symbol"
        case .invalidEscape: return "an escaped value is out of range"
        case .inconsistentEnd: return "the substream does not end where its last symbol does"
        }
    }
}

/// Decodes symbols written by `RANSEncoder`, in the order they were pushed. Every byte read is
/// bounds-checked and every loop bounded, so arbitrary input only yields garbage symbols plus a
/// failure reported by `finish()`, never a trap or a hang.
public struct RANSDecoder: Sendable {
    public let tables: CDFTableSet
    private let bytes: ArraySlice<UInt8>
    private var position: Int
    private var state: UInt32
    /// The first failure seen; later symbols are garbage.
    public private(set) var failure: RANSDecodingFailure?

    /// Starts decoding `bytes` (one substream).
    public init(bytes: ArraySlice<UInt8>, tables: CDFTableSet) {
        self.tables = tables
        self.bytes = bytes
        position = bytes.startIndex
        var x: UInt32 = 0
        if bytes.count >= RANS.stateBytes {
            for i in 0..<RANS.stateBytes { x |= UInt32(bytes[position + i]) << UInt32(8 * i) }
            position += RANS.stateBytes
        }
        state = x
        if x < RANS.lowerBound || x >= RANS.lowerBound << 8 {
            failure = .invalidInitialState
            state = RANS.lowerBound          // keeps later arithmetic within its invariants
        }
    }

    /// Decodes the next value coded with table `table` (which must be a valid index, as the
    /// encoder's was; `LevelCoder` checks the indexes before decoding).
    @inline(__always)
    public mutating func decode(table: Int) -> Int32 {
        let slot = state & 0xFFFF
        let s = tables.index(table: table, slot: slot)
        let base = tables.bases[table]
        let start = tables.flatCDF[base + s]
        advance(start: start, freq: tables.flatCDF[base + s + 1] &- start, slot: slot)
        let length = tables.lengths[table]
        if s < length - 1 { return tables.offsets[table] + Int32(s) }
        return decodeEscape(first: Int(tables.offsets[table]), last: Int(tables.offsets[table]) + length - 2)
    }

    /// Checks that the substream ended exactly after the last symbol.
    public func finish() throws(RANSDecodingFailure) {
        if let failure { throw failure }
        guard state == RANS.lowerBound, position == bytes.endIndex else { throw .inconsistentEnd }
    }

    @inline(__always)
    private mutating func advance(start: UInt32, freq: UInt32, slot: UInt32) {
        // state < 2^31 ⇒ freq · (state >> 16) < 2^31 and slot − start < freq: no overflow.
        var x = freq &* (state >> 16) &+ (slot &- start)
        while x < RANS.lowerBound {           // ≤ 2 rounds: x ≥ 2^7 after a valid step
            var byte: UInt32 = 0
            if position < bytes.endIndex {
                byte = UInt32(bytes[position])
                position += 1
            } else if failure == nil {
                failure = .exhausted
            }
            x = x << 8 | byte
            if x == 0 { x = RANS.lowerBound }  // only reachable after a failure; ends the loop
        }
        state = x
    }

    private mutating func readBits(_ count: Int) -> UInt32 {
        let shift = UInt32(16 - count)
        let slot = state & 0xFFFF
        let value = slot >> shift
        advance(start: value << shift, freq: 1 << shift, slot: slot)
        return value
    }

    private mutating func decodeEscape(first: Int, last: Int) -> Int32 {
        let below = readBits(1) == 1
        let lengthMinusOne = Int(readBits(EscapeCode.lengthFieldBits))
        guard lengthMinusOne < EscapeCode.maxBitLength else {
            if failure == nil { failure = .invalidEscape }
            return Int32(last)
        }
        var payload = 1
        var remaining = lengthMinusOne
        if remaining > EscapeCode.chunkBits {
            remaining -= EscapeCode.chunkBits
            payload = payload << remaining | Int(readBits(remaining))
            remaining = EscapeCode.chunkBits
        }
        if remaining > 0 { payload = payload << remaining | Int(readBits(remaining)) }
        let distance = payload - 1
        let value = below ? first - 1 - distance : last + 1 + distance
        guard value.magnitude < EscapeCode.magnitudeLimit else {
            if failure == nil { failure = .invalidEscape }
            return Int32(last)
        }
        return Int32(value)
    }
}
