import Foundation
import XCTest
@testable import PSICEntropy

final class SymbolCostsTests: XCTestCase {
    /// Every regular value costs −log2(f/2^16); escaped values (and the escape symbol) have no price.
    func testPricesRegularValuesOnly() throws {
        // Table 0: values −2...2 then escape; table 1: values 0...1 then escape.
        let f0: [Int32] = [1000, 4000, 50000, 10000, 535, 1], f1: [Int32] = [60000, 5535, 1]
        func cdf(_ f: [Int32], stride: Int) -> [Int32] {
            var c: [Int32] = [0]
            for v in f { c.append(c.last! + v) }
            return c + [Int32](repeating: 0, count: stride - c.count)
        }
        let set = try CDFTableSet(rows: 2, stride: 7, cdf: cdf(f0, stride: 7) + cdf(f1, stride: 7), lengths: [6, 3], offsets: [-2, 0])
        let costs = SymbolCosts(set)
        for (v, f) in zip(-2...2, f0) {
            XCTAssertEqual(costs.bits(table: 0, value: Int32(v))!, -log2(Double(f) / 65536), accuracy: 1e-12)
        }
        XCTAssertEqual(costs.bits(table: 1, value: 1)!, -log2(5535.0 / 65536), accuracy: 1e-12)
        for (t, v) in [(0, -3), (0, 3), (1, -1), (1, 2), (1, Int32.min), (0, Int32.max)] {
            XCTAssertNil(costs.bits(table: t, value: Int32(v)), "table \(t) value \(v) is escaped")
        }
    }
}
