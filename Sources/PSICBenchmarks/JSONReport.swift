import Foundation

/// A benchmark's results, which `psic bench` prints as an aligned text table for people or, with
/// `--json`, as JSON for scripts.
public protocol JSONReport: Encodable {}

extension JSONReport {
    /// JSON for scripts: keys sorted, so two runs' outputs diff line by line.
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}

// Column padding of the reports' text tables. A value as wide as its column still gets one
// space, so neighbouring columns never run together.

/// `s` left-aligned in a column of `n` characters.
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }

/// `s` right-aligned in a column of `n` characters.
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }
