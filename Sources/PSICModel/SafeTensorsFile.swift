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
            return decoded(n) { raw, i in Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * i, as: UInt32.self))) }
        case "F16":
            return decoded(n) { raw, i in
                Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: base + 2 * i, as: UInt16.self))))
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
        case "I32":
            return decoded(e.range.count / 4) { raw, i in
                Int32(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * i, as: Int32.self))
            }
        case "I16":
            return decoded(e.range.count / 2) { raw, i in
                Int32(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: base + 2 * i, as: Int16.self)))
            }
        case "I8": return decoded(e.range.count) { raw, i in Int32(raw.load(fromByteOffset: base + i, as: Int8.self)) }
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

    /// `count` elements read from the file's bytes in one pass over raw memory: loading a model
    /// decodes ~2 M values, and per-byte array indexing made that ~0.25 s in a debug build.
    @inline(__always)
    private func decoded<T>(_ count: Int, _ element: (UnsafeRawBufferPointer, Int) -> T) -> [T] {
        bytes.withUnsafeBytes { raw in
            [T](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count { out.initializeElement(at: i, to: element(raw, i)) }
                initialized = count
            }
        }
    }
}
