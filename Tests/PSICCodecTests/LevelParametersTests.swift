import PSICEngine
import XCTest
@testable import PSICCodec

/// The split of an entropy-parameter network's output into means, the sampler's table indexes
/// and the coder's (docs/integer-entropy-model.md).
final class LevelParametersTests: XCTestCase {
    /// Two channels of a 2×2 level: 8 means, then 8 raw scale indexes.
    let output = Tensor(shape: TensorShape(channels: 4, height: 2, width: 2),
                        ints: [5, -3, 0, 7, 1, 2, 3, 4,
                               -2, 0, 3, 7, 9, 1, 6, 5])

    func testIndexesAreClampedToTheTables() {
        let p = LevelParameters(networkOutput: output, scaleCount: 8)
        XCTAssertEqual(p.means, [5, -3, 0, 7, 1, 2, 3, 4])
        XCTAssertEqual(p.tableIndexes, [0, 0, 3, 7, 7, 1, 6, 5])
        XCTAssertEqual(p.codingTableIndexes, p.tableIndexes, "no offsets: the coder reads the sampler's tables")
    }

    func testCodingOffsetsShiftEachChannelAndClampAgain() {
        let p = LevelParameters(networkOutput: output, scaleCount: 8, codingOffsets: [2, -3])
        XCTAssertEqual(p.tableIndexes, [0, 0, 3, 7, 7, 1, 6, 5], "the sampler's tables do not move")
        XCTAssertEqual(p.codingTableIndexes, [2, 2, 5, 7, 4, 0, 3, 2])
        XCTAssertEqual(LevelParameters(networkOutput: output, scaleCount: 8, codingOffsets: [0, 0]).codingTableIndexes,
                       p.tableIndexes)
    }
}
