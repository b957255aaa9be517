import Foundation

/// Items of a batch that failed, for the command's exit status: the errors themselves were
/// reported as they happened.
public struct BatchFailure: Error, CustomStringConvertible {
    public let failed: Int
    public let total: Int
    public var description: String { "\(failed) of \(total) file\(total == 1 ? "" : "s") failed (errors above)" }

    public init(failed: Int, total: Int) {
        self.failed = failed
        self.total = total
    }
}

/// Runs `body` on every index of `indices`, at most `jobs` at once. A failing item does not stop
/// the others (a bad photo in a folder of thousands should cost that photo only): its error is
/// printed at once through `progress`, and the count of failures is returned.
public func forEachItem(_ indices: Range<Int>, jobs: Int, progress: ProgressLine,
                        _ body: @escaping @Sendable (Int) throws -> Void) async -> Int {
    await withTaskGroup(of: Bool.self) { group in
        var next = indices.lowerBound
        var failed = 0
        func add(_ i: Int) {
            group.addTask {
                do {
                    try body(i)
                    return true
                } catch {
                    progress.fail("\(error)")
                    return false
                }
            }
        }
        while next < indices.upperBound && next - indices.lowerBound < max(1, jobs) {
            add(next)
            next += 1
        }
        while let ok = await group.next() {
            if !ok { failed += 1 }
            if next < indices.upperBound {
                add(next)
                next += 1
            }
        }
        return failed
    }
}
