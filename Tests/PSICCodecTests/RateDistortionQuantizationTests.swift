import PSICImage
import PSICModel
import XCTest
@testable import PSICCodec

/// The encoder's rate-distortion symbol choice: what it saves, what it costs, and its refusals.
/// (Its rule against the exporter's, symbol for symbol: GoldenVectorTests.)
final class RateDistortionQuantizationTests: XCTestCase {
    /// The shipped file names no lambda (it trades the perceptual metric for PSNR: Tools/train/
    /// RESULTS.md, session 51), so its default is nearest rounding; a lambda of 40 saves bytes.
    func testSavesBitsForLittleFidelity() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        XCTAssertNil(codec.model.rateDistortionLambdas)
        for name in ["image_64x64.png", "image_128x96.png"] {
            let image = try CodecFixtures.image(name)
            let nearest = try codec.encode(image)
            XCTAssertEqual(nearest, try codec.encode(image, quantization: .nearest))
            let byDefault = try codec.encode(image, quantization: .rateDistortion(lambda: 40))
            XCTAssertLessThan(byDefault.count, nearest.count, "\(name): the rate-distortion stream is not smaller")
            // A far larger lambda is nearest rounding again
            XCTAssertEqual(try codec.encode(image, quantization: .rateDistortion(lambda: 1e12)), nearest)
            // ... and what it saves costs little: the full-level decodes stay within 0.5 dB
            let pNearest = psnr(try codec.decode(nearest)[0], image), pRD = psnr(try codec.decode(byDefault)[0], image)
            XCTAssertLessThan(abs(pNearest - pRD), 0.5, "\(name): \(pNearest) dB rounded to the nearest, \(pRD) dB by rate and distortion")
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
