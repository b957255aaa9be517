/// Measures the coder on a realistic level, for `psic` reports and regression checks.
public enum EntropyBenchmark {
    /// One measurement.
    public struct Result: Sendable, CustomStringConvertible {
        public let shape: LatentShape
        public let substreams: Int
        public let bytes: Int
        public let bitsPerSymbol: Double
        /// Best of the runs, seconds per level.
        public let encodeSeconds: Double
        public let decodeSeconds: Double

        /// Decoded symbols per second.
        public var decodeSymbolsPerSecond: Double { Double(shape.count) / decodeSeconds }
        /// Decoded compressed bytes per second, in MB (10^6 bytes).
        public var decodeMegabytesPerSecond: Double { Double(bytes) / decodeSeconds / 1e6 }
        public var encodeSymbolsPerSecond: Double { Double(shape.count) / encodeSeconds }

        public var description: String {
            func f(_ v: Double, _ digits: Int = 1) -> String {
                let scale = (0..<digits).reduce(1.0) { r, _ in r * 10 }
                return String(Double((v * scale).rounded()) / scale)
            }
            return "\(shape.channels)×\(shape.height)×\(shape.width) symbols, \(substreams) substreams, "
                + "\(bytes) bytes (\(f(bitsPerSymbol, 3)) bits/symbol): decode \(f(decodeSeconds * 1e6)) µs "
                + "= \(f(decodeSymbolsPerSecond / 1e6)) M symbols/s, \(f(decodeMegabytesPerSecond)) MB/s; "
                + "encode \(f(encodeSeconds * 1e6)) µs = \(f(encodeSymbolsPerSecond / 1e6)) M symbols/s"
        }
    }

    /// Codes one level of `shape` with the shipped model's 128 scales: table indexes drawn from
    /// the smaller scales (the first 71, σ ≤ 8, as most latents of a trained model), symbols drawn
    /// from those same tables by the sampler, so the rate is the tables' entropy. Best of
    /// `iterations` runs.
    public static func run(shape: LatentShape = LatentShape(channels: 20, height: 32, width: 48),
                           substreams: Int? = nil, iterations: Int = 20) throws -> Result {
        let tables = CDFTableSet.syntheticGaussian(scales: CDFTableSet.modelScales(count: 128))
        let indexes = (0..<shape.count).map { Int32(SynonymSampler.splitmix64(UInt64($0)) % 71) }
        let symbols = try SynonymSampler.sampleLevel(tableIndexes: indexes, shape: shape, tables: tables, seed: 7, level: 0)
        let clock = ContinuousClock()
        var encodeBest = Duration.seconds(1000), decodeBest = Duration.seconds(1000)
        var section = CodedSection(substreams: [])
        for _ in 0..<max(1, iterations) {
            let start = clock.now
            section = try LevelCoder.encode(symbols: symbols, tableIndexes: indexes, shape: shape, tables: tables,
                                            substreams: substreams)
            encodeBest = min(encodeBest, clock.now - start)
        }
        let bytes = section.serialized()
        var reader = ByteReader(bytes)
        let parsed = try StreamSection.parse(&reader, location: .level(0), rows: shape.height, format: PSICStream.formatVersion)
        for _ in 0..<max(1, iterations) {
            let start = clock.now
            let decoded = try LevelCoder.decode(parsed, tableIndexes: indexes, shape: shape, tables: tables)
            decodeBest = min(decodeBest, clock.now - start)
            precondition(decoded == symbols, "benchmark round trip failed")
        }
        func seconds(_ d: Duration) -> Double {
            Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        return Result(shape: shape, substreams: parsed.substreamCount, bytes: bytes.count,
                      bitsPerSymbol: Double(bytes.count * 8) / Double(shape.count),
                      encodeSeconds: seconds(encodeBest), decodeSeconds: seconds(decodeBest))
    }
}
