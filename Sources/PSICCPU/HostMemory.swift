import Foundation

/// The memory this process may use: the machine's, or less where a memory control group caps
/// it (a container's `--memory`, a systemd unit's `MemoryMax`).
///
/// /proc/meminfo and the physical memory size describe the whole machine even inside a
/// container, so a process sized by them alone is killed by the kernel's OOM killer at the
/// group's limit instead of failing with an error it could report. Both cgroup versions are
/// read: v2's `memory.max` / `memory.current`, v1's `memory.limit_in_bytes` /
/// `memory.usage_in_bytes`, for the process's group and every ancestor visible to it.
public enum HostMemory {
    /// Bytes of memory the process may hold at most: physical memory, or a group's limit when lower.
    public static var total: Int {
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        return cgroups(read: readFile).map(\.limit).reduce(physical, min)
    }

    /// Bytes that can still be allocated without swapping or passing a group's limit:
    /// `MemAvailable` plus the free pages held on the per-CPU lists, or less where a group has
    /// less room left; nil when neither is known.
    ///
    /// Why the per-CPU lists: the kernel keeps recently freed pages on them for reuse and leaves
    /// them out of `MemFree` and so of `MemAvailable`, and since Linux 6.7 tunes their size to
    /// what is freed. On the 2-core development VM (kernel 6.18) they held 0.9 GiB after a
    /// GiB was freed: the freed GiB barely raised `MemAvailable`, and taken again from the
    /// lists it barely lowered it. The pages are free: an allocation that needs them drains
    /// the lists.
    @Sendable public static func available() -> Int? {
        let groups = cgroups(read: readFile).map(\.headroom)
        let meminfo = memAvailable(readFile("/proc/meminfo")).map {
            $0 + (perCPUFreePages(readFile("/proc/zoneinfo")) ?? 0) * CPUPages.pageSize
        }
        return (groups + [meminfo].compactMap { $0 }).min()
    }

    /// One memory control group's limit and what it holds now.
    struct CgroupMemory: Equatable {
        let limit: Int
        /// Memory charged to the group, less its inactive file cache and half its active one
        /// (page cache the kernel reclaims before the group would run out; `docker stats`
        /// leaves out the inactive part, /proc/meminfo's `MemAvailable` counts about half of
        /// the rest as available).
        let usage: Int
        var headroom: Int { max(0, limit - usage) }
    }

    /// The limited memory groups the process is in, from its own group up to the root, read
    /// through `read` (a file's text, or nil when it does not exist). Groups without a limit
    /// are left out.
    static func cgroups(read: (String) -> String?) -> [CgroupMemory] {
        guard let membership = read("/proc/self/cgroup") else { return [] }
        var found: [CgroupMemory] = []
        var seen: Set<String> = []
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let v2 = fields[0] == "0" && fields[1].isEmpty
            let v1 = fields[1].split(separator: ",").contains("memory")
            guard v1 || v2 else { continue }
            let root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory"
            // Inside a cgroup namespace the path is "/" and the mount's root is the group itself;
            // without one the path is the group's full path under the mount.
            for dir in ancestors(String(fields[2])) where seen.insert(root + dir).inserted {
                let base = root + (dir == "/" ? "" : dir) + "/"
                let group = v2
                    ? cgroup(limit: read(base + "memory.max"), usage: read(base + "memory.current"),
                             stat: read(base + "memory.stat"), cacheKeys: ("inactive_file", "active_file"))
                    : cgroup(limit: read(base + "memory.limit_in_bytes"), usage: read(base + "memory.usage_in_bytes"),
                             stat: read(base + "memory.stat"), cacheKeys: ("total_inactive_file", "total_active_file"))
                if let group { found.append(group) }
            }
        }
        return found
    }

    /// `path` and each of its parents up to "/".
    static func ancestors(_ path: String) -> [String] {
        var parts = path.split(separator: "/").map(String.init)
        var out: [String] = []
        while !parts.isEmpty {
            out.append("/" + parts.joined(separator: "/"))
            parts.removeLast()
        }
        return out + ["/"]
    }

    /// A group from its files' text; nil without a limit ("max" in v2, v1's page-rounded
    /// 2^63 − 4096, or anything not a number).
    private static func cgroup(limit: String?, usage: String?, stat: String?,
                               cacheKeys: (inactive: String, active: String)) -> CgroupMemory? {
        guard let limit = limit.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }), limit < 1 << 60,
              let usage = usage.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else { return nil }
        var inactive = 0, active = 0
        for line in (stat ?? "").split(separator: "\n") {
            let kv = line.split(separator: " ")
            guard kv.count == 2, let v = Int(kv[1]) else { continue }
            if kv[0] == cacheKeys.inactive { inactive = v }
            if kv[0] == cacheKeys.active { active = v }
        }
        return CgroupMemory(limit: limit, usage: max(0, usage - inactive - active / 2))
    }

    /// `MemAvailable` of /proc/meminfo's text, in bytes.
    static func memAvailable(_ meminfo: String?) -> Int? {
        for line in (meminfo ?? "").split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
            return kb * 1024
        }
        return nil
    }

    /// Free pages on the per-CPU lists of every zone: the `count:` lines of /proc/zoneinfo's
    /// `pagesets` blocks (the only lines with that key); nil without any.
    static func perCPUFreePages(_ zoneinfo: String?) -> Int? {
        var pages: Int?
        for line in (zoneinfo ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2, fields[0] == "count:", let n = Int(fields[1]) else { continue }
            pages = (pages ?? 0) + n
        }
        return pages
    }

    private static func readFile(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }
}
