@testable import PSICCodec
import XCTest

private struct Boom: Error, Equatable { let id: Int }

/// The per-request bookkeeping of the batch codec: a failure stays with its request.
final class BatchLanesTests: XCTestCase {
    func testFailuresStayWithTheirRequest() throws {
        var lanes = BatchLanes<[Int], Int>(count: 5)
        lanes.fail(0, Boom(id: 0))
        for k in 1..<5 { lanes.start(k) { if k == 2 { throw Boom(id: 2) }; return [k] } }
        XCTAssertEqual(lanes.active, [1, 3, 4])
        lanes.update(3) { $0.append(30) }
        lanes.update(4) { _ in throw Boom(id: 4) }
        lanes.update(2) { $0.append(99) }  // already failed: no state, nothing runs
        XCTAssertEqual(lanes.active, [1, 3])
        XCTAssertEqual(lanes[3], [3, 30])
        lanes.finishAll { k, state in
            if k == 1 { throw Boom(id: 1) }
            return state.reduce(0, +)
        }
        XCTAssertEqual(lanes.active, [])
        let out = lanes.outcome
        XCTAssertEqual(out.count, 5)
        for (k, id) in [(0, 0), (1, 1), (2, 2), (4, 4)] {
            XCTAssertThrowsError(try out[k].get()) { XCTAssertEqual($0 as? Boom, Boom(id: id)) }
        }
        XCTAssertEqual(try out[3].get(), 33)
    }

    func testEngineFailureHitsOnlyUnfinishedRequests() throws {
        var lanes = BatchLanes<Int, Int>(count: 3)
        lanes.fail(0, Boom(id: 0))
        lanes.start(1) { 1 }
        lanes.start(2) { 2 }
        lanes.failRemaining(Boom(id: 9))
        let out = lanes.outcome
        XCTAssertThrowsError(try out[0].get()) { XCTAssertEqual($0 as? Boom, Boom(id: 0)) }
        XCTAssertThrowsError(try out[1].get()) { XCTAssertEqual($0 as? Boom, Boom(id: 9)) }
        XCTAssertThrowsError(try out[2].get()) { XCTAssertEqual($0 as? Boom, Boom(id: 9)) }
    }
}
