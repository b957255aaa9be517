import Foundation
import PSICEngine
import PSICEntropy
import PSICModel
import XCTest
@testable import PSICCodec

/// The Swift engine computes the same model as the PyTorch/NumPy exporter: integer tensors
/// exactly, float tensors within fp32 tolerance. Golden files: Tests/Golden (README there).
final class GoldenVectorTests: XCTestCase {
    struct Golden {
        let file: SafeTensorsFile
        let info: [String: Any]
        init(_ name: String) throws {
            file = try SafeTensorsFile(bytes: [UInt8](try Data(contentsOf: CodecFixtures.golden.appendingPathComponent(name))))
            info = try JSONSerialization.jsonObject(with: Data((file.metadata["golden"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        }
        func shape(_ name: String) -> [Int] { file.entries[name]!.shape }
        func tensorShape(_ name: String) -> TensorShape {
            let s = shape(name)
            return TensorShape(channels: s[0], height: s[1], width: s[2])
        }
    }

    func check(_ name: String, backend: Backend) throws {
        let model = try CodecFixtures.loadModel()
        let g = try Golden(name)
        let fingerprint = g.info["model_fingerprint"] as? String
        XCTAssertEqual(fingerprint, model.info.fingerprint,
                       "golden vectors belong to another model: re-run Tools/train/export.py with --golden Tests/Golden")
        let t = try ModelTransforms(model: model, backend: backend, idleGraphBytesLimit: 1 << 30)
        let L = model.levels, lc = model.levelChannels

        // Integer path: z_hat → H → per level (mu, scale index) → y_hat, exactly.
        let zHat = Tensor(shape: g.tensorShape("z_hat"), ints: try g.file.ints("z_hat"))
        let hyper = try t.hyperSynthesize(zHat)
        XCTAssertEqual(hyper.ints!, try g.file.ints("H"), "hyper features differ")
        var grid = LatentGrid(hyper: hyper, levelChannels: lc, levels: L)
        let mu = try g.file.ints("mu"), index = try g.file.ints("scale_index"), q = try g.file.ints("q")
        let codingIndex = try g.file.ints("coding_index")
        let yHat = try g.file.ints("y_hat")
        let n = lc * grid.plane
        for i in 0..<L {
            let p = LevelParameters(networkOutput: try t.levelParameters(level: i, context: grid.context(forLevel: i)),
                                    model: model, level: i)
            let range = (i * n)..<((i + 1) * n)
            XCTAssertEqual(p.means, Array(mu[range]), "level \(i + 1) means differ")
            XCTAssertEqual(p.tableIndexes, Array(index[range]), "level \(i + 1) scale indexes differ")
            XCTAssertEqual(p.codingTableIndexes, Array(codingIndex[range]), "level \(i + 1) coding table indexes differ")
            let latents = zip(q[range], p.means).map { LatentQuantizer.latent(symbol: $0, mean: $1) }
            XCTAssertEqual(latents, Array(yHat[range]), "level \(i + 1) latents differ")
            grid.store(level: i, latents)
        }

        // The encoder's rate-distortion choice for every latent of the golden y, given each level's
        // means and coding tables: the exporter's rd_symbols to the bit (both price in Double).
        if g.file.entries["rd_q"] != nil {
            let lambdas = try XCTUnwrap(g.info["rd_lambda"] as? [Double])
            XCTAssertEqual(lambdas.count, L)
            let costs = SymbolCosts(try CDFTableSet(model.gaussianTables))
            let yRef = try g.file.floats("y"), rdRef = try g.file.ints("rd_q")
            let clamp = Float(model.info.constants.latentClamp)
            let chosen = (0..<yRef.count).map { j in
                let lambda = lambdas[j / n]
                return lambda > 0 ? RateDistortionQuantizer.symbol(latent: yRef[j], mean: mu[j], codingTable: Int(codingIndex[j]),
                                                                   clamp: clamp, lambda: lambda, costs: costs)
                    : LatentQuantizer.symbol(latent: yRef[j], mean: mu[j], clamp: clamp)
            }
            XCTAssertEqual(chosen, rdRef, "rate-distortion symbols differ")
            XCTAssertNotEqual(chosen, q, "the rate-distortion choice changed no symbol: the check would prove nothing")
        } else {
            XCTFail("golden vectors without rd_q: re-run Tools/train/export.py with --golden Tests/Golden")
        }

        // Sampling: levels from `sample_level` on, with `sample_seed`, from the transmitted ones.
        let sampleLevel = g.info["sample_level"] as? Int ?? 2
        let seed = UInt64(g.info["sample_seed"] as? Int ?? 7)
        var sampled = LatentGrid(hyper: hyper, levelChannels: lc, levels: L)
        for i in 0..<sampleLevel { sampled.store(level: i, Array(yHat[(i * n)..<((i + 1) * n)])) }
        let codec = try ImageCodec(model: model, backend: backend)
        for i in sampleLevel..<L {
            let p = LevelParameters(networkOutput: try t.levelParameters(level: i, context: sampled.context(forLevel: i)),
                                    model: model, level: i)
            let symbols = try SynonymSampler.sampleLevel(tableIndexes: p.tableIndexes,
                                                         shape: LatentShape(channels: lc, height: grid.height, width: grid.width),
                                                         tables: codec.gaussianTables, seed: seed, level: i)
            sampled.store(level: i, zip(symbols, p.means).map { LatentQuantizer.latent(symbol: $0, mean: $1) })
        }
        XCTAssertEqual(sampled.latents.ints!, try g.file.ints("sampled_y_hat"), "sampled latents differ")

        // Float transforms: g_a and g_s against PyTorch. Weights are the same fp16 values widened
        // to fp32 on both sides; differences are summation order (and FMA on GPUs) over O(2500)-term
        // sums per layer through 7 layers: 2e-3 absolute on O(1)..O(10) values is ~50x what we
        // measure, and a wrong layer misses by O(0.1) or more.
        let inputShape = g.tensorShape("input")
        let (y, z) = try t.analyze(try g.file.floats("input"), height: inputShape.height, width: inputShape.width)
        let yRef = try g.file.floats("y"), zRef = try g.file.floats("z")
        XCTAssertLessThan(maxAbsDiff(y.floats!, yRef), 2e-3 * max(1, maxAbs(yRef) / 10), "g_a output differs")
        XCTAssertLessThan(maxAbsDiff(z.floats!, zRef), 2e-3 * max(1, maxAbs(zRef) / 10), "h_a output differs")
        let xHat = try t.synthesize(Tensor(shape: g.tensorShape("y_hat"), ints: yHat))
        XCTAssertLessThan(maxAbsDiff(xHat.floats!, try g.file.floats("x_hat")), 2e-3, "g_s output differs")
    }

    func testGoldenCPU() throws {
        for name in ["image_64x64.safetensors", "image_128x96.safetensors"] {
            try check(name, backend: CodecFixtures.cpu)
        }
    }

    func testGoldenVulkan() throws {
        let vk = try CodecFixtures.vulkanBackend()
        for name in ["image_64x64.safetensors", "image_128x96.safetensors"] {
            try check(name, backend: vk)
        }
    }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

func maxAbs(_ a: [Float]) -> Float { a.map { abs($0) }.max() ?? 0 }
