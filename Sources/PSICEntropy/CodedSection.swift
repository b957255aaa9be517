/// One coded section (z or a level) before it is laid out in a stream: its independent rANS
/// substreams, as `LevelCoder` returns them. `PSICStream.write` lays them out in the format
/// version of the stream's header, so the coder does not depend on the container's layout.
public struct CodedSection: Sendable, Equatable {
    /// The substreams' bytes, in band order (substream `i` codes rows `[i·h/k, (i+1)·h/k)`).
    public let substreams: [[UInt8]]

    public init(substreams: [[UInt8]]) {
        self.substreams = substreams
    }

    /// Bytes of the coded symbols alone (the substreams, coder states included).
    public var codedByteCount: Int { substreams.reduce(0) { $0 + $1.count } }

    /// Bytes the section takes in a stream of format `format`, its container included.
    public func byteCount(format: UInt16 = PSICStream.formatVersion) -> Int {
        codedByteCount + StreamSection.tableBytes(lengths: substreams.map(\.count), format: format)
    }

    /// The section's bytes in format `format` (what `PSICStream.write` appends).
    public func serialized(format: UInt16 = PSICStream.formatVersion) -> [UInt8] {
        StreamSection.serialize(substreams: substreams, format: format)
    }
}
