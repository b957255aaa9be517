import Foundation
import PSICImage
import PSICModel
import XCTest
@testable import PSICCodec

/// The encoder's rate-distortion symbol choice: what it saves, what it costs, and its refusals.
/// (Its rule against the exporter's, symbol for symbol: GoldenVectorTests.)
final class RateDistortionQuantizationTests: XCTestCase {
    /// The shipped file names no weights (RESULTS.md, session 51: what they buy in PSNR they give
    /// back elsewhere), so its encoder rounds to the nearest; a weight, one for every level or more
    /// at the first levels, makes smaller streams whose decodes stay within a fraction of a dB.
    func testSavesBitsForLittleFidelity() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        XCTAssertNil(codec.model.rateDistortionLambdas)
        var tuned = try ModelFileRobustnessTests.EditableModel()
        let L = codec.model.levels
        tuned.setMetadata(["encoder", "rate_distortion_lambda"], (0..<L).map { 40 * pow(1.3, Double(L - 1 - $0)) })
        let graded = try ImageCodec(model: try CodecModel(bytes: try tuned.bytes()), backend: CodecFixtures.cpu)
        for name in ["image_64x64.png", "image_128x96.png"] {
            let image = try CodecFixtures.image(name)
            let nearest = try codec.encode(image)
            XCTAssertEqual(nearest, try codec.encode(image, quantization: .nearest))
            // A far larger lambda is nearest rounding again
            XCTAssertEqual(try codec.encode(image, quantization: .rateDistortion(lambda: 1e12)), nearest)
            let pNearest = psnr(try codec.decode(nearest)[0], image)
            for (label, stream) in [("lambda 40", try codec.encode(image, quantization: .rateDistortion(lambda: 40))),
                                    ("40 at the top, x1.3 a level below", try graded.encode(image))] {
                XCTAssertLessThan(stream.count, nearest.count, "\(name), \(label): the stream is not smaller")
                let p = psnr(try codec.decode(stream)[0], image)
                XCTAssertLessThan(abs(pNearest - p), 0.5, "\(name), \(label): \(pNearest) dB rounded to the nearest, \(p) dB")
            }
        }
    }

    func testBadLambdaFailsItsRequestAlone() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let image = try CodecFixtures.image("image_64x64.png")
        for bad in [0, -1, Double.nan, Double.infinity] {
            let results = codec.encodeBatch([EncodeRequest(image: image, quantization: .rateDistortion(lambda: bad)),
                                             EncodeRequest(image: image)])
            XCTAssertThrowsError(try results[0].get()) { error in
                guard case .invalidRateDistortionLambda = error as? CodecError else { return XCTFail("\(bad): \(error)") }
            }
            XCTAssertEqual(try results[1].get(), try codec.encode(image))
        }
    }
}
