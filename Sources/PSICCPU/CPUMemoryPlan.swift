import PSICEngine

/// Where each tensor of a graph lives on the CPU: tensors whose lifetimes do not overlap share
/// a slab of memory.
///
/// A tensor lives from the first node that writes it (graph inputs: from the start) to the last
/// node that reads it (graph outputs: to the end). Nodes run in order, so when a node needs
/// memory for its output, every slab whose tensor's last reader ran before it is free; a node's
/// own input stays taken while it runs, so input and output never share. Encoding a 3072×2048
/// image peaked at 4.1 GB with a buffer per tensor, 3.5 GB with this plan (docs/design.md).
struct CPUMemoryPlan {
    /// Slab index of each tensor.
    let slabOfTensor: [Int]
    /// Size of each slab in bytes: the largest tensor placed in it.
    let slabBytes: [Int]

    init(_ graph: Graph) {
        let n = graph.nodes.count
        var firstWrite = [Int](repeating: Int.max, count: graph.tensors.count)
        var lastUse = [Int](repeating: -1, count: graph.tensors.count)
        var writers = [Int](repeating: 0, count: graph.tensors.count)
        var writtenInPart = [Bool](repeating: false, count: graph.tensors.count)
        for (i, node) in graph.nodes.enumerated() {
            let out = node.output.tensor.index, inp = node.input.tensor.index
            firstWrite[out] = min(firstWrite[out], i)
            lastUse[out] = max(lastUse[out], i)
            writers[out] += 1
            if node.output.channels != graph.tensors[out].shape.channels { writtenInPart[out] = true }
            lastUse[inp] = max(lastUse[inp], i)
        }
        for (t, decl) in graph.tensors.enumerated() {
            // Inputs are copied in before the first node. A concatenation target (written by
            // several nodes, or not in full) may be read where no node wrote, which reads zeros
            // (memory is zeroed once): it keeps memory of its own for the whole run.
            let assembled = !decl.isInput && (writers[t] != 1 || writtenInPart[t])
            if decl.isInput || assembled || firstWrite[t] == Int.max { firstWrite[t] = -1 }
            if assembled { lastUse[t] = n }
        }
        for out in graph.outputs { lastUse[out.index] = n }

        var slabOfTensor = [Int](repeating: -1, count: graph.tensors.count)
        var slabBytes: [Int] = []
        var free: [Int] = []
        let byStart = graph.tensors.indices.sorted { (firstWrite[$0], $0) < (firstWrite[$1], $1) }
        var released = 0  // tensors sorted by last use, released up to here
        let byEnd = graph.tensors.indices.sorted { (lastUse[$0], $0) < (lastUse[$1], $1) }
        for t in byStart {
            // Free what was last used before this tensor's first writer.
            while released < byEnd.count, lastUse[byEnd[released]] < firstWrite[t] {
                let done = byEnd[released]
                if slabOfTensor[done] >= 0 { free.append(slabOfTensor[done]) }
                released += 1
            }
            let bytes = max(1, graph.tensors[t].shape.count) * 4
            // The smallest free slab that fits, else the largest free one grown, else a new one.
            let fitting = free.indices.filter { slabBytes[free[$0]] >= bytes }
            let pick = fitting.min { slabBytes[free[$0]] < slabBytes[free[$1]] }
                ?? free.indices.max { slabBytes[free[$0]] < slabBytes[free[$1]] }
            if let pick {
                let slab = free.remove(at: pick)
                slabBytes[slab] = max(slabBytes[slab], bytes)
                slabOfTensor[t] = slab
            } else {
                slabOfTensor[t] = slabBytes.count
                slabBytes.append(bytes)
            }
        }
        self.slabOfTensor = slabOfTensor
        self.slabBytes = slabBytes
    }
}
