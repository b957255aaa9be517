/// The requests of a batch between stages: each one carries its state until it fails or
/// finishes, and a request that fails drops out alone while the others go on.
///
/// `encodeBatch` and `decodeLatentsBatch` run every network stage once for the requests still
/// active and the host stages per request in between; this holds the bookkeeping both share.
struct BatchLanes<State, Output> {
    private var results: [Result<Output, Error>?]
    private var states: [Int: State] = [:]

    init(count: Int) {
        results = Array(repeating: nil, count: count)
    }

    /// The requests still running, in request order.
    var active: [Int] { states.keys.sorted() }

    subscript(request: Int) -> State { states[request]! }

    /// Starts `request` with the state `make` gives, or fails it with what `make` throws.
    mutating func start(_ request: Int, _ make: () throws -> State) {
        do {
            states[request] = try make()
        } catch {
            fail(request, error)
        }
    }

    /// Changes the state of a running request in place; if `body` throws, the request fails.
    mutating func update(_ request: Int, _ body: (inout State) throws -> Void) {
        // Taken out while it changes: a copy left in the dictionary would make every mutation of
        // a large buffer in the state (a latent grid) copy it whole (copy-on-write).
        guard var state = states.removeValue(forKey: request) else { return }
        do {
            try body(&state)
            states[request] = state
        } catch {
            fail(request, error)
        }
    }

    mutating func fail(_ request: Int, _ error: Error) {
        states[request] = nil
        results[request] = .failure(error)
    }

    /// Ends every running request with the output `body` gives (or the error it throws).
    mutating func finishAll(_ body: (Int, State) throws -> Output) {
        for (request, state) in states { results[request] = Result { try body(request, state) } }
        states = [:]
    }

    /// Fails every request that has no result yet (an engine failure hits the whole batch).
    mutating func failRemaining(_ error: Error) {
        for k in results.indices where results[k] == nil { results[k] = .failure(error) }
        states = [:]
    }

    /// One result per request; call after `finishAll` or `failRemaining`.
    var outcome: [Result<Output, Error>] { results.map { $0! } }
}
