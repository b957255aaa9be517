import Foundation
import PSICCodec
import PSICEngine
import PSICEntropy
import PSICImage
import PSICModel
import XCTest

/// Damaged and edited model files (`psic --model` takes any path): each must load, or fail
/// with a typed `ModelError` that names the problem — never trap. A file that loads must
/// encode and decode an image, or fail with a typed error.
final class ModelFileRobustnessTests: XCTestCase {
    /// The shipped model split into its header (with the PSIC metadata parsed out of its
    /// string) and the tensor bytes, so a test can edit the header and put the file together.
    struct EditableModel {
        var header: [String: Any]
        var psic: [String: Any]
        var data: ArraySlice<UInt8>

        init() throws {
            let bytes = try ModelFileRobustnessTests.shipped.get()
            var length = 0
            for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
            header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
            let meta = try XCTUnwrap(header["__metadata__"] as? [String: String])
            psic = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(meta["psic"]).utf8)) as? [String: Any])
            data = bytes[(8 + length)...]
        }

        func bytes() throws -> [UInt8] {
            var h = header
            var meta = (h["__metadata__"] as? [String: String]) ?? [:]
            meta["psic"] = psic.isEmpty ? nil : String(decoding: try JSONSerialization.data(withJSONObject: psic), as: UTF8.self)
            h["__metadata__"] = meta
            let json = [UInt8](try JSONSerialization.data(withJSONObject: h))
            return (0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) } + json + data
        }

        /// Overwrites the first element of tensor `name` (a little-endian Int32 tensor) with `value`.
        mutating func setFirstInt32(of name: String, to value: Int32) throws {
            let entry = try XCTUnwrap(header[name] as? [String: Any])
            let start = try XCTUnwrap((entry["data_offsets"] as? [Int])?.first)
            for i in 0..<4 { data[data.startIndex + start + i] = UInt8(truncatingIfNeeded: value >> (8 * Int32(i))) }
        }

        /// Sets `psic[path[0]][path[1]]...` (dictionaries all the way down). An empty `psic` leaves
        /// the file without PSIC metadata.
        mutating func setMetadata(_ path: [String], _ value: Any) {
            psic = Self.set(psic, path[...], value)
        }

        static func set(_ dict: [String: Any], _ path: ArraySlice<String>, _ value: Any) -> [String: Any] {
            var d = dict
            guard let key = path.first else { return d }
            d[key] = path.count == 1 ? value : set((d[key] as? [String: Any]) ?? [:], path.dropFirst(), value)
            return d
        }
    }

    static let shipped: Result<[UInt8], Error> = Result { [UInt8](try Data(contentsOf: CodecFixtures.modelURL)) }

    /// Loads `bytes`; returns the ModelError (any other error type fails the test), or nil
    /// when the file loaded, after checking that the model encodes and decodes a small image.
    func loadOutcome(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> ModelError? {
        let model: CodecModel
        do {
            model = try CodecModel(bytes: bytes)
        } catch let e as ModelError {
            XCTAssertFalse(e.description.isEmpty, file: file, line: line)
            return e
        } catch {
            XCTFail("untyped load error \(type(of: error)): \(error)", file: file, line: line)
            return nil
        }
        do {
            let codec = try ImageCodec(model: model, backend: CodecFixtures.cpu)
            let image = RGBImage(width: 64, height: 64, pixels: (0..<(64 * 64 * 3)).map { UInt8(truncatingIfNeeded: $0 * 7) })
            let stream = try codec.encode(image, levels: 2)
            let decoded = try codec.decode(stream)
            XCTAssertEqual(decoded.first?.width, 64, file: file, line: line)
        } catch is ModelError {
        } catch is CodecError {
        } catch is StreamError {
        } catch {
            XCTFail("untyped codec error \(type(of: error)): \(error)", file: file, line: line)
        }
        return nil
    }

    func testShippedModelLoadsAsIsAndAfterReassembly() throws {
        XCTAssertNil(loadOutcome(try Self.shipped.get()))
        XCTAssertGreaterThan(try EditableModel().bytes().count, 7_000_000)
        XCTAssertNil(loadOutcome(try EditableModel().bytes()))
    }

    func testTruncatedAndCorruptContainers() throws {
        let bytes = try Self.shipped.get()
        for n in [0, 7, 8, 9, 100, bytes.count / 2, bytes.count - 1] {
            guard case .malformedFile? = loadOutcome(Array(bytes.prefix(n))) else {
                return XCTFail("a file cut at \(n) bytes should be malformed")
            }
        }
        var huge = bytes
        huge[6] = 0x7f    // header length far past the file
        guard case .malformedFile? = loadOutcome(huge) else { return XCTFail("header length past the file") }
        var notJSON = bytes
        notJSON[8] = UInt8(ascii: "#")
        guard case .malformedFile? = loadOutcome(notJSON) else { return XCTFail("header that is not JSON") }
    }

    func testTensorEntriesThatDoNotFit() throws {
        let cases: [(String, Any, String)] = [
            ("shape", [Int.max / 2, 4, 5, 5], "a shape whose byte count overflows Int"),
            ("shape", [96, 3, 5, -5], "a negative dimension"),
            ("data_offsets", [0, Int.max], "a range past the file"),
            ("dtype", "F8", "an unknown dtype"),
        ]
        for (key, value, what) in cases {
            var m = try EditableModel()
            var entry = try XCTUnwrap(m.header["g_a.0.weight"] as? [String: Any])
            entry[key] = value
            m.header["g_a.0.weight"] = entry
            XCTAssertNotNil(loadOutcome(try m.bytes()), what)
        }
        var missing = try EditableModel()
        missing.header["g_s.6.bias"] = nil
        guard case let .badTensor(name, reason)? = loadOutcome(try missing.bytes()) else { return XCTFail("missing tensor") }
        XCTAssertEqual(name, "g_s.6.bias")
        XCTAssertEqual(reason, "missing")
        // F16 and I16 have the same size, so only the reader's dtype check stops this one.
        var retyped = try EditableModel()
        var entry = try XCTUnwrap(retyped.header["g_a.0.weight"] as? [String: Any])
        XCTAssertEqual(entry["dtype"] as? String, "F16")
        entry["dtype"] = "I16"
        retyped.header["g_a.0.weight"] = entry
        guard case .badTensor? = loadOutcome(try retyped.bytes()) else { return XCTFail("integer dtype for a float tensor") }
    }

    func testMetadataOutsideWhatThisBuildReads() throws {
        let cases: [([String], Any)] = [
            (["format_version"], 3),
            (["format"], "other"),
            (["sampling"], "another-rule"),
            (["fingerprint"], "xyz"),
            (["architecture", "L"], 0),
            (["architecture", "L"], 3),                 // does not divide C
            (["architecture", "N"], 1 << 40),
            (["architecture", "hyper"], -128),
            (["constants", "latent_clamp"], 3_000_000_000),  // loaded, then trapped converting to Int32
            (["constants", "latent_clamp"], 0),
            (["constants", "z_clamp"], 40_000),
            (["constants", "scale_count"], 0),
            (["constants", "scale_count"], 65),        // tables hold 64 or 128 rows, never 65
            (["constants", "cdf_precision"], 15),
            (["constants", "leaky_slope_numerator"], 300),
            (["int_layers", "h_s.4", "input_bound"], 1),  // h_s.2 outputs more than that
            (["int_layers", "ep.0.2", "kernel"], 3),
            (["int_layers", "ep.7.4", "activation"], "gelu"),
            (["encoder", "rate_distortion_lambda"], [40, 40, 40, 40, 40, 40, 40, -1]),
            (["encoder", "rate_distortion_lambda"], [40, 40, 40]),
            (["encoder", "rate_distortion_lambda"], 40),
            (["encoder", "rate_distortion_lambda"], "40"),
        ]
        for (path, value) in cases {
            var m = try EditableModel()
            m.setMetadata(path, value)
            XCTAssertNotNil(loadOutcome(try m.bytes()), "\(path.joined(separator: ".")) = \(value) should be refused")
        }
        var none = try EditableModel()
        none.psic = [:]
        guard case .unsupportedModel? = loadOutcome(try none.bytes()) else { return XCTFail("a file without PSIC metadata") }
    }

    /// The encoder block is optional: a lambda there is the encoder's default; without it, or
    /// with 0, the encoder rounds to the nearest symbol. The tensors (and fingerprint) are the same.
    func testEncoderSettingsSetTheEncodersDefault() throws {
        let shipped = try CodecFixtures.loadModel()
        let L = shipped.levels
        var with = try EditableModel()
        with.setMetadata(["encoder", "rate_distortion_lambda"], [Double](repeating: 40, count: L))
        let tuned = try CodecModel(bytes: try with.bytes())
        XCTAssertEqual(tuned.rateDistortionLambdas, [Double](repeating: 40, count: L))
        XCTAssertEqual(tuned.fingerprint, shipped.fingerprint)
        var zero = try EditableModel()
        zero.setMetadata(["encoder", "rate_distortion_lambda"], [Double](repeating: 0, count: L))
        XCTAssertNil(try CodecModel(bytes: try zero.bytes()).rateDistortionLambdas)
        var without = try EditableModel()
        without.psic["encoder"] = nil
        XCTAssertNil(try CodecModel(bytes: try without.bytes()).rateDistortionLambdas)
        // a weight at the top level only: the first levels are rounded to the nearest, so a stream
        // cut below the top is the plain stream's cut
        var top = try EditableModel()
        top.setMetadata(["encoder", "rate_distortion_lambda"], [Double](repeating: 0, count: L - 1) + [40])
        let topOnly = try ImageCodec(model: try CodecModel(bytes: try top.bytes()), backend: CodecFixtures.cpu)
        let image = try CodecFixtures.image("image_64x64.png")
        let a = try ImageCodec(model: tuned, backend: CodecFixtures.cpu), b = try ImageCodec(model: shipped, backend: CodecFixtures.cpu)
        let stream = try a.encode(image)
        XCTAssertEqual(stream, try b.encode(image, quantization: .rateDistortion(lambda: 40)))
        XCTAssertNotEqual(stream, try b.encode(image, quantization: .nearest))
        XCTAssertEqual(try a.encode(image, quantization: .nearest), try b.encode(image, quantization: .nearest))
        XCTAssertEqual(try topOnly.encode(image, levels: L - 1), try b.encode(image, levels: L - 1, quantization: .nearest))
        XCTAssertNotEqual(try topOnly.encode(image), try b.encode(image, quantization: .nearest))
        // either model decodes it alike
        XCTAssertEqual(try a.decodeLatents(stream, seeds: [1]).map(\.ints), try b.decodeLatents(stream, seeds: [1]).map(\.ints))
    }

    /// Format version 2 added the coder's scale-index offsets: a version-2 file without them is
    /// refused by name, a version-1 file codes with offsets of zero (whatever tensors it holds).
    func testCodingOffsetsByFormatVersion() throws {
        let shipped = try CodecModel(bytes: try Self.shipped.get())
        XCTAssertEqual(shipped.info.formatVersion, 2)
        XCTAssertEqual(shipped.codingOffsets.count, shipped.latentChannels)
        XCTAssert(shipped.codingOffsets.contains { $0 != 0 }, "the shipped model's offsets are calibrated, not zeros")

        var missing = try EditableModel()
        missing.header["gaussian_coding_offset"] = nil
        guard case let .badTensor(name, _)? = loadOutcome(try missing.bytes()) else {
            return XCTFail("a version-2 file without gaussian_coding_offset")
        }
        XCTAssertEqual(name, "gaussian_coding_offset")

        for value in [Int32.min, -128, 128, Int32.max] {
            var far = try EditableModel()
            try far.setFirstInt32(of: "gaussian_coding_offset", to: value)
            guard case .badTensor("gaussian_coding_offset", _)? = loadOutcome(try far.bytes()) else {
                return XCTFail("coding offset \(value) past the 128 tables")
            }
        }
        var near = try EditableModel()
        try near.setFirstInt32(of: "gaussian_coding_offset", to: -127)
        XCTAssertNil(loadOutcome(try near.bytes()), "an offset within the tables loads and codes")

        var v1 = try EditableModel()
        v1.setMetadata(["format_version"], 1)
        XCTAssertNil(loadOutcome(try v1.bytes()))
        let zeros = try CodecModel(bytes: try v1.bytes())
        XCTAssertEqual(zeros.codingOffsets, [Int32](repeating: 0, count: shipped.latentChannels))

        // The offsets change what a stream costs, never what it decodes to: the same model with and
        // without them gives the same latents at every cut, sampled or not, and the calibrated
        // offsets code this photo-like test image in fewer bytes.
        let image = try CodecFixtures.image("image_128x96.png")
        let withOffsets = try ImageCodec(model: shipped, backend: CodecFixtures.cpu)
        let withoutOffsets = try ImageCodec(model: zeros, backend: CodecFixtures.cpu)
        let a = try withOffsets.encode(image, seed: 5), b = try withoutOffsets.encode(image, seed: 5)
        XCTAssertLessThan(a.count, b.count)
        for l in [1, 4, shipped.levels] {
            XCTAssertEqual(try withOffsets.decodeLatents(a, levels: l, seeds: [5]).map(\.ints),
                           try withoutOffsets.decodeLatents(b, levels: l, seeds: [5]).map(\.ints), "level \(l)")
        }
    }

    /// Random edits of the header's numbers and strings: every outcome a typed error or a
    /// working codec. Each iteration loads the 7.6 MB model, so the count is kept small.
    func testRandomHeaderEditsGiveTypedOutcomes() throws {
        let base = try EditableModel()
        var paths: [[String]] = []
        func collect(_ d: [String: Any], _ prefix: [String]) {
            for (k, v) in d {
                if let sub = v as? [String: Any] { collect(sub, prefix + [k]) } else { paths.append(prefix + [k]) }
            }
        }
        collect(base.psic, [])
        paths = paths.filter { $0.first != "training" }.sorted { $0.joined() < $1.joined() }
        let values: [Any] = [0, -1, 1, 2, 3, 255, 65_536, Int(Int32.max) + 1, 1 << 62, -(1 << 62), 0.5, "", "x", true]
        var state: UInt64 = 7
        func draw(_ n: Int) -> Int {    // a fixed sequence: a failure reproduces
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % n
        }
        let iterations = 100
        var refused = 0, loaded = 0
        for _ in 0..<iterations {
            var m = base
            for _ in 0...draw(2) {
                m.setMetadata(paths[draw(paths.count)], values[draw(values.count)])
            }
            if loadOutcome(try m.bytes()) == nil { loaded += 1 } else { refused += 1 }
        }
        XCTAssertEqual(refused + loaded, iterations)
        XCTAssertGreaterThan(refused, iterations / 2, "most random edits break the model")
    }
}
