import PSICCodec
import PSICCommandLine
import XCTest

/// The options `psic serve` and `psic-loadtest` share: parsing, limits, the configuration built.
final class ServerOptionsTests: XCTestCase {
    /// `--graph-cache-mb` (every command that runs the model) in mebibytes.
    func testGraphCacheIsInMebibytes() throws {
        // The default: 4096 MiB, or the codec's default idle memory when less (a small machine).
        XCTAssertEqual(try ModelOptions.parse([]).graphCacheBytes, min(4096, ImageCodec.defaultIdleGraphBytes >> 20) << 20)
        XCTAssertEqual(try ModelOptions.parse(["--graph-cache-mb", "3"]).graphCacheBytes, 3 << 20)
        XCTAssertEqual(try ModelOptions.parse(["--graph-cache-mb", "0"]).graphCacheBytes, 0)
        XCTAssertThrowsError(try ModelOptions.parse(["--graph-cache-mb=-1"]))
        XCTAssertThrowsError(try ModelOptions.parse(["--graph-cache-mb", "16777217"]))
    }

    func testOutOfRangeValuesAreRefused() {
        for args in [["--max-batch", "0"], ["--timeout", "0"], ["--max-wait-ms", "20000"],
                     ["--timeout", "inf"], ["--timeout", "nan"], ["--timeout", "1e17"], ["--timeout", "0.0001"],
                     ["--max-batch", "100000000"], ["--idle-timeout", "0"], ["--idle-timeout", "inf"],
                     ["--max-queue", "9223372036854775807"]] {
            XCTAssertThrowsError(try ServerOptions.parse(args), "\(args)")
        }
    }

    /// `--device` picks a Vulkan device: with the CPU backend it would be ignored, so it is refused.
    func testDeviceWithTheCPUBackendIsRefused() {
        XCTAssertThrowsError(try ModelOptions.parse(["--backend", "cpu", "--device", "0"]))
        XCTAssertNoThrow(try ModelOptions.parse(["--backend", "vulkan", "--device", "0"]))
    }

    /// `--tile-mb` (every command that runs the model) in mebibytes, default the codec's.
    func testTileLimitIsInMebibytesAndBounded() throws {
        XCTAssertEqual(try ModelOptions.parse([]).tileTensorBytes, 512 << 20)
        XCTAssertEqual(try ModelOptions.parse(["--tile-mb", "64"]).tileTensorBytes, 64 << 20)
        for args in [["--tile-mb", "0"], ["--tile-mb=-5"], ["--tile-mb", "2000000"]] {
            XCTAssertThrowsError(try ModelOptions.parse(args), "\(args)")
        }
    }

    func testConfigurationCarriesTheLimits() throws {
        let c = try ServerOptions.parse(["--max-batch", "3", "--max-queue", "5", "--max-pixels", "100"])
            .configuration(host: "127.0.0.1", port: 0)
        XCTAssertEqual(c.maxBatch, 3)
        XCTAssertEqual(c.maxQueue, 5)
        XCTAssertEqual(c.maxPixels, 100)
    }
}
