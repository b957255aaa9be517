import PSICCodec
import PSICEngine
import PSICImage
import XCTest

/// Batched encode/decode (every network stage of the batch in one `Backend.runBatch`) must give
/// exactly what the one-at-a-time calls give, image by image, on every backend.
final class BatchCodecTests: XCTestCase {
    private func images() throws -> [RGBImage] {
        let a = try CodecFixtures.image("image_64x64.png")
        let b = try CodecFixtures.image("image_128x96.png")
        // An odd size exercises padding inside a batch of mixed shapes.
        let c = RGBImage(width: 40, height: 24, pixels: (0..<(40 * 24 * 3)).map { UInt8(($0 * 7) % 256) })
        return [a, b, c, a]
    }

    /// `small`: fewer, smaller images (lavapipe runs the networks about 50x slower than the CPU backend).
    private func checkEncodeDecode(on backend: Backend, small: Bool = false) throws {
        let model = try CodecFixtures.loadModel()
        let codec = try ImageCodec(model: model, backend: backend)
        let imgs = try images()
        let L = model.levels
        let requests = small
            ? [EncodeRequest(image: imgs[0], levels: 2, seed: 1),
               EncodeRequest(image: imgs[2], levels: 1, seed: 3),
               EncodeRequest(image: imgs[3], levels: 0, seed: 4),
               EncodeRequest(image: imgs[3], levels: 1, seed: 5)]
            : [EncodeRequest(image: imgs[0], levels: L, seed: 1),
               EncodeRequest(image: imgs[1], levels: 2, seed: 2),
               EncodeRequest(image: imgs[2], levels: 1, seed: 3),
               EncodeRequest(image: imgs[3], levels: 0, seed: 4),   // invalid: fails alone
               EncodeRequest(image: imgs[3], levels: nil, seed: 5)]
        let profile = CodecProfile()
        let batched = codec.encodeBatch(requests, profile: profile)
        XCTAssertEqual(batched.count, requests.count)
        // analysis, h_s and one run per level, whatever the batch size.
        XCTAssertEqual(profile.submissions, 2 + (requests.compactMap(\.levels).max() ?? L))
        var streams: [[UInt8]] = []
        for (r, b) in zip(requests, batched) {
            if r.levels == 0 {
                XCTAssertThrowsError(try b.get()) { XCTAssertEqual($0 as? CodecError, .invalidLevels(requested: 0, available: 1...L)) }
                continue
            }
            let single = try codec.encode(r.image, levels: r.levels, seed: r.seed)
            XCTAssertEqual(try b.get(), single, "batched stream differs from the single encode")
            streams.append(single)
        }

        let decodeRequests = small
            ? [DecodeRequest(stream: streams[0], levels: 1, seeds: [9]),
               DecodeRequest(stream: [1, 2, 3]),
               DecodeRequest(stream: streams[1], levels: nil, seeds: [1, 2])]
            : [DecodeRequest(stream: streams[0], levels: 1, seeds: [9]),
                              DecodeRequest(stream: streams[1]),
                              DecodeRequest(stream: [1, 2, 3]),                     // garbage: fails alone
                              DecodeRequest(stream: streams[2], levels: nil, seeds: [1, 2]),
                              DecodeRequest(stream: streams[3], levels: 3, seeds: [7])]
        let decoded = codec.decodeBatch(decodeRequests)
        for (r, d) in zip(decodeRequests, decoded) {
            if r.stream.count == 3 {
                XCTAssertThrowsError(try d.get())
                continue
            }
            let single = try codec.decode(r.stream, levels: r.levels, seeds: r.seeds)
            XCTAssertEqual(try d.get(), single, "batched decode differs from the single decode")
        }
    }

    func testBatchEqualsSingleOnCPU() throws {
        try checkEncodeDecode(on: CodecFixtures.cpu)
    }

    func testBatchEqualsSingleOnVulkan() throws {
        try checkEncodeDecode(on: try CodecFixtures.vulkanBackend(), small: true)
    }

    func testEmptyBatches() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        XCTAssertTrue(codec.encodeBatch([]).isEmpty)
        XCTAssertTrue(codec.decodeBatch([]).isEmpty)
    }
}
