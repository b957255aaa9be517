import XCTest
@testable import PSICModel

/// Every dtype the loader reads, little-endian, from a data section that starts at an odd
/// offset (so each multi-byte value is an unaligned load).
final class SafeTensorsFileTests: XCTestCase {
    private func file(header: String, data: [UInt8]) throws -> SafeTensorsFile {
        var h = Array(header.utf8)
        if h.count % 2 == 0 { h.append(0x20) }   // odd header length: unaligned data
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: h.count >> (8 * $0)) }
        bytes += h + data
        return try SafeTensorsFile(bytes: bytes)
    }

    func testEveryDtypeDecodes() throws {
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        var data: [UInt8] = []
        data += le(Float(1.5).bitPattern) + le(Float(-2.25).bitPattern)         // F32 0..<8
        data += le(Float16(0.5).bitPattern) + le(Float16(-3).bitPattern)        // F16 8..<12
        data += le(Int32(-7)) + le(Int32(65_536))                              // I32 12..<20
        data += le(Int16(-300)) + le(Int16(1234))                              // I16 20..<24
        data += [0x80, 0x00, 0x7F]                                             // I8 24..<27
        let header = """
        {"f32":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},\
        "f16":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},\
        "i32":{"dtype":"I32","shape":[2],"data_offsets":[12,20]},\
        "i16":{"dtype":"I16","shape":[2],"data_offsets":[20,24]},\
        "i8":{"dtype":"I8","shape":[3],"data_offsets":[24,27]}}
        """
        let f = try file(header: header, data: data)
        XCTAssertEqual(f.dataStart % 2, 1)
        XCTAssertEqual(try f.floats("f32", shape: [2]), [1.5, -2.25])
        XCTAssertEqual(try f.floats("f16"), [0.5, -3])
        XCTAssertEqual(try f.ints("i32"), [-7, 65_536])
        XCTAssertEqual(try f.ints("i16"), [-300, 1234])
        XCTAssertEqual(try f.ints("i8"), [-128, 0, 127])
        XCTAssertThrowsError(try f.floats("i16"))
        XCTAssertThrowsError(try f.ints("f32"))
        XCTAssertThrowsError(try f.floats("f32", shape: [3]))
    }
}
