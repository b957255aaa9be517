import Foundation

/// A parsed safetensors file: a JSON header describing tensors, then their raw little-endian bytes.
/// Every offset is checked against the file before any tensor is read.
public struct SafeTensorsFile: Sendable {
    public struct Entry: Sendable {
        public let dtype: String
        public let shape: [Int]
        public let range: Range<Int>
    }

    public let entries: [String: Entry]
    public let metadata: [String: String]
    let bytes: [UInt8]
    let dataStart: Int

    /// Largest header accepted; real PSIC headers are a few tens of KiB.
    static let maxHeaderBytes = 16 << 20

    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 8 else { throw ModelError.malformedFile(reason: "shorter than 8 bytes") }
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        guard headerLength > 1, headerLength <= Self.maxHeaderBytes, headerLength <= bytes.count - 8 else {
            throw ModelError.malformedFile(reason: "header length \(headerLength) does not fit the file")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)]))
        } catch {
            throw ModelError.malformedFile(reason: "header is not JSON")
        }
        guard let header = json as? [String: Any] else { throw ModelError.malformedFile(reason: "header is not a JSON object") }
        self.bytes = bytes
        self.dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw ModelError.malformedFile(reason: "__metadata__ is not a string map") }
                metadata = m
                continue
            }
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String,
                  let shape = e["shape"] as? [Int], let offs = e["data_offsets"] as? [Int], offs.count == 2,
                  offs[0] >= 0, offs[0] <= offs[1], offs[1] <= dataLength, shape.allSatisfy({ $0 >= 0 }) else {
                throw ModelError.malformedFile(reason: "bad entry for tensor '\(name)'")
            }
            guard let size = Self.elementSize(dtype) else {
                throw ModelError.badTensor(name: name, reason: "unsupported dtype \(dtype)")
            }
            // A shape from the file may multiply past Int.max; such a tensor cannot fit the file.
            var byteCount: Int? = size
            for d in shape {
                byteCount = byteCount.flatMap { n in
                    let (product, overflow) = n.multipliedReportingOverflow(by: d)
                    return overflow ? nil : product
                }
            }
            guard byteCount == offs[1] - offs[0] else {
                throw ModelError.malformedFile(reason: "tensor '\(name)' byte range does not match its shape")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: offs[0]..<offs[1])
        }
        self.entries = entries
        self.metadata = metadata
    }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F32", "I32", "U32": return 4
        case "F16", "I16", "U16", "BF16": return 2
        case "I8", "U8", "BOOL": return 1
        case "F64", "I64", "U64": return 8
        default: return nil
        }
    }

    func entry(_ name: String, shape: [Int]? = nil) throws -> Entry {
        guard let e = entries[name] else { throw ModelError.badTensor(name: name, reason: "missing") }
        if let shape, e.shape != shape {
            throw ModelError.badTensor(name: name, reason: "shape \(e.shape), expected \(shape)")
        }
        return e
    }

    /// A float tensor (F32 or F16) as Float.
    public func floats(_ name: String, shape: [Int]? = nil) throws -> [Float] {
        let e = try entry(name, shape: shape)
        let base = dataStart + e.range.lowerBound
        let n = e.range.count / (Self.elementSize(e.dtype) ?? 1)
        switch e.dtype {
        case "F32":
            return (0..<n).map { i in Float(bitPattern: readU32(base + 4 * i)) }
        case "F16":
            return (0..<n).map { i in
                let lo = UInt16(bytes[base + 2 * i]), hi = UInt16(bytes[base + 2 * i + 1])
                return Float(Float16(bitPattern: lo | hi << 8))
            }
        default:
            throw ModelError.badTensor(name: name, reason: "dtype \(e.dtype), expected F32 or F16")
        }
    }

    /// An integer tensor (I8, I16 or I32) widened to Int32.
    public func ints(_ name: String, shape: [Int]? = nil) throws -> [Int32] {
        let e = try entry(name, shape: shape)
        let base = dataStart + e.range.lowerBound
        switch e.dtype {
        case "I32": return (0..<(e.range.count / 4)).map { Int32(bitPattern: readU32(base + 4 * $0)) }
        case "I16":
            return (0..<(e.range.count / 2)).map { i in
                Int32(Int16(bitPattern: UInt16(bytes[base + 2 * i]) | UInt16(bytes[base + 2 * i + 1]) << 8))
            }
        case "I8": return (0..<e.range.count).map { Int32(Int8(bitPattern: bytes[base + $0])) }
        default: throw ModelError.badTensor(name: name, reason: "dtype \(e.dtype), expected an integer type")
        }
    }

    /// The raw bytes of every tensor in name order (what the model fingerprint hashes).
    public func tensorBytesInNameOrder() -> [ArraySlice<UInt8>] {
        entries.keys.sorted().map { name in
            let r = entries[name]!.range
            return bytes[(dataStart + r.lowerBound)..<(dataStart + r.upperBound)]
        }
    }

    private func readU32(_ o: Int) -> UInt32 {
        UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
    }
}
