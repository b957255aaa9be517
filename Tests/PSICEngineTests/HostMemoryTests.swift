@testable import PSICCPU
import XCTest

/// `HostMemory` reads a container's memory limit from the control-group files; these tests give
/// it the files of the usual layouts.
final class HostMemoryTests: XCTestCase {
    private func reader(_ files: [String: String]) -> (String) -> String? { { files[$0] } }

    /// cgroup v2 inside a namespace (Docker's default): the group is the mount's root.
    func testCgroupV2LimitAndRoomLeft() {
        let groups = HostMemory.cgroups(read: reader([
            "/proc/self/cgroup": "0::/\n",
            "/sys/fs/cgroup/memory.max": "4294967296\n",
            "/sys/fs/cgroup/memory.current": "1073741824\n",
            "/sys/fs/cgroup/memory.stat": "anon 800000000\nfile 273741824\nactive_file 200000000\ninactive_file 73741824\n",
        ]))
        // Inactive page cache counts as free, and half the active one.
        XCTAssertEqual(groups, [HostMemory.CgroupMemory(limit: 4 << 30, usage: (1 << 30) - 73741824 - 100_000_000)])
        XCTAssertEqual(groups.first?.headroom, (4 << 30) - (1 << 30) + 73741824 + 100_000_000)
    }

    /// cgroup v2 with the full path (no namespace): a limit on the parent (a systemd slice)
    /// counts too, and "max" means no limit.
    func testCgroupV2LimitOnAnAncestor() {
        let groups = HostMemory.cgroups(read: reader([
            "/proc/self/cgroup": "0::/system.slice/psic.service\n",
            "/sys/fs/cgroup/system.slice/psic.service/memory.max": "max\n",
            "/sys/fs/cgroup/system.slice/psic.service/memory.current": "100\n",
            "/sys/fs/cgroup/system.slice/memory.max": "2000000000\n",
            "/sys/fs/cgroup/system.slice/memory.current": "500000000\n",
        ]))
        XCTAssertEqual(groups, [HostMemory.CgroupMemory(limit: 2_000_000_000, usage: 500_000_000)])
    }

    /// cgroup v1 (this development VM's layout): the memory controller's own line; v1's
    /// "unlimited" (2^63 rounded down to a page) is no limit.
    func testCgroupV1() {
        let files = [
            "/proc/self/cgroup": "5:devices:/\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes": "9191567360\n",
            "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "3221225472\n",
            "/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": "2147483648\n",
            "/sys/fs/cgroup/memory/docker/abc/memory.stat": "cache 5\ntotal_inactive_file 1073741824\ninactive_file 7\n",
        ]
        XCTAssertEqual(HostMemory.cgroups(read: reader(files)), [HostMemory.CgroupMemory(limit: 3 << 30, usage: 1 << 30)])
    }

    /// A hybrid layout (v1 controllers and the v2 tree side by side) reads both; a v1
    /// "unlimited" rounded to 64 KiB pages and a group with no room left behave.
    func testHybridLayoutAndEdgeValues() {
        let files = [
            "/proc/self/cgroup": "4:memory:/a\n0::/a\n",
            "/sys/fs/cgroup/memory/a/memory.limit_in_bytes": "9223372036854710272\n",
            "/sys/fs/cgroup/memory/a/memory.usage_in_bytes": "5\n",
            "/sys/fs/cgroup/a/memory.max": "0\n",
            "/sys/fs/cgroup/a/memory.current": "4096\n",
        ]
        let groups = HostMemory.cgroups(read: reader(files))
        XCTAssertEqual(groups, [HostMemory.CgroupMemory(limit: 0, usage: 4096)])
        XCTAssertEqual(groups.first?.headroom, 0)
    }

    /// No control-group files (another OS, or no memory controller): no groups, and what the
    /// free-memory figure says stands.
    func testNoGroupsAndMeminfo() {
        XCTAssertEqual(HostMemory.cgroups(read: reader([:])), [])
        XCTAssertEqual(HostMemory.cgroups(read: reader(["/proc/self/cgroup": "1:cpu:/\n"])), [])
        XCTAssertEqual(HostMemory.memAvailable("MemTotal: 100 kB\nMemAvailable:   2048 kB\n"), 2 << 20)
        XCTAssertNil(HostMemory.memAvailable("MemTotal: 100 kB\n"))
        XCTAssertEqual(HostMemory.ancestors("/a/b"), ["/a/b", "/a", "/"])
        XCTAssertEqual(HostMemory.ancestors("/"), ["/"])
    }

    /// The free pages on the per-CPU lists: every `pagesets` block's `count:`, over all zones
    /// and CPUs; other keys with "count" in them do not match.
    func testPerCPUFreePages() {
        let zoneinfo = """
            Node 0, zone    DMA32
              pages free     1000
                    nr_free_pages 1000
              pagesets
                cpu: 0
                          count:    12
                          high:     0
                          batch:    1
              vm stats threshold: 4
                cpu: 1
                          count:    30
                          high:     1734
            Node 0, zone   Normal
              pagesets
                cpu: 0
                          count:    200000
                          high:     232704
            """
        XCTAssertEqual(HostMemory.perCPUFreePages(zoneinfo), 200_042)
        XCTAssertNil(HostMemory.perCPUFreePages("Node 0, zone   Normal\n  pages free 5\n"))
        XCTAssertNil(HostMemory.perCPUFreePages(nil))
    }

    /// On this machine: the figures exist and are sane.
    func testThisMachine() {
        XCTAssertGreaterThan(HostMemory.total, 0)
        XCTAssertLessThanOrEqual(HostMemory.total, Int(clamping: ProcessInfo.processInfo.physicalMemory))
        if let available = HostMemory.available() { XCTAssertLessThanOrEqual(available, HostMemory.total + (1 << 30)) }
    }

    /// The free-memory figure follows what this process takes: 1 GiB made resident lowers it,
    /// and giving the pages back raises it again (what the codec's memory checks and the graph
    /// pool's release rely on). The margins are half the GiB, for other processes
    /// moving the figure meanwhile; a figure that ignored this process would not move that far
    /// on an idle machine. Until session 38 the figure was `MemAvailable` alone, which leaves
    /// out the free pages on the kernel's per-CPU lists: on the development VM (kernel 6.18)
    /// those held up to 0.9 GiB, and a GiB populated and given back moved `MemAvailable` by as
    /// little as 142 MiB while `AnonPages` moved by the whole GiB (docs/design.md).
    func testAvailableFollowsResidentMemory() throws {
        let bytes = 1 << 30
        guard let before = HostMemory.available() else { throw XCTSkip("no free-memory figure on this system") }
        guard before > 3 * bytes else { throw XCTSkip("under 3 GiB free: the test would push the machine") }
        let pages = try CPUPages(bytes: bytes)
        pages.populate()
        var word: UInt64 = 0x9E37_79B9_7F4A_7C15
        let words = pages.pointer.bindMemory(to: UInt64.self, capacity: bytes / 8)
        for i in 0..<(bytes / 8) {
            word = word &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            words[i] = word
        }
        let held = try XCTUnwrap(HostMemory.available())
        XCTAssertLessThan(held, before - bytes / 2, "1 GiB resident: \(before >> 20) -> \(held >> 20) MiB free")
        pages.release()
        let after = try XCTUnwrap(HostMemory.available())
        print("free memory: \(before >> 20) -> \(held >> 20) MiB with 1 GiB resident -> \(after >> 20) MiB given back")
        XCTAssertGreaterThan(after, held + bytes / 2, "1 GiB given back: \(before >> 20) -> \(held >> 20) -> \(after >> 20) MiB free")
    }
}
