import PSICEngine
import XCTest
@testable import PSICServer

/// How engine failures reach a client: an image too large for the free memory is a 503 the
/// client can retry (or shrink), other engine failures stay 500s.
final class ServerErrorMappingTests: XCTestCase {
    func testOutOfMemoryIsA503WithItsOwnCode() {
        let oom = EngineError.outOfMemory(backend: "cpu", bytes: 40_000_000_000, available: 20_000_000_000)
        let e = ServerError.from(codecError: oom, decoding: false)
        XCTAssertEqual(e, .insufficientMemory(oom.description))
        XCTAssertEqual(e.status, .serviceUnavailable)
        XCTAssertEqual(e.code, "insufficient_memory")
        XCTAssertTrue(e.description.contains("40.0 GB") && e.description.contains("20.0 GB"), e.description)
        let gpu = EngineError.outOfDeviceMemory(backend: "vulkan", bytes: 9_000_000_000)
        XCTAssertEqual(ServerError.from(codecError: gpu, decoding: true), .insufficientMemory(gpu.description))
        let other = ServerError.from(codecError: EngineError.backendFailure(backend: "vulkan", reason: "device lost"), decoding: true)
        XCTAssertEqual(other.status, .internalServerError)
    }
}
