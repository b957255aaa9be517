import XCTest
@testable import PSICServer

/// The bound on coding requests in hand: places are taken up to the limit, refused beyond it,
/// and given back.
final class RequestAdmissionTests: XCTestCase {
    func testPlacesAreBoundedAndReturned() {
        let a = RequestAdmission(limit: 3)
        XCTAssertEqual((0..<5).map { _ in a.enter() }, [true, true, true, false, false])
        XCTAssertEqual(a.inUse, 3, "a refused request takes no place")
        a.leave()
        XCTAssertTrue(a.enter())
        XCTAssertFalse(a.enter())
        for _ in 0..<3 { a.leave() }
        XCTAssertEqual(a.inUse, 0)
    }

    /// A server admits `--max-queue` waiting plus one batch running.
    func testServerLimitIsQueuePlusBatch() throws {
        var c = ServerConfiguration()
        c.maxQueue = 5
        c.maxBatch = 3
        let server = EncodingServer(codec: try ServerFixtures.cpuCodec.get(), backendName: "cpu", isGPU: false,
                                    configuration: c, logger: ServerFixtures.logger)
        XCTAssertEqual(server.admission.limit, 8)
    }
}
