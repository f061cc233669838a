import Foundation

/// Rotary position embeddings in the Hugging Face LLaMA convention (`rotate_half`):
/// `inv_freq[i] = theta^(-2i/d)`, angle = position * inv_freq[i], cos/sin duplicated over
/// both halves of a head, `out = q * cos + rotate_half(q) * sin` with
/// `rotate_half(q) = [-q[d/2..<d], q[0..<d/2]]`.
public struct Rotary {
    public let headDim: Int
    public let maxPositions: Int
    /// `cosTable[p * half + i]`, `sinTable[p * half + i]` for position p, frequency i.
    public private(set) var cosTable: [Float]
    public private(set) var sinTable: [Float]

    /// Tables for positions `0..<maxPositions`, computed as transformers does in float32
    /// (float32 inverse frequencies and angles, float32 cos/sin of those angles).
    public init(headDim: Int, theta: Float, maxPositions: Int) {
        let inverse = (0..<headDim / 2).map { i in 1 / powf(theta, Float(2 * i) / Float(headDim)) }
        self.init(headDim: headDim, inverseFrequencies: inverse, attentionScaling: 1, maxPositions: maxPositions)
    }

    /// Tables from given inverse frequencies `[headDim / 2]` (a scaled RoPE variant), with cos
    /// and sin multiplied by `attentionScaling` in float32 as transformers does (YaRN's factor; 1 otherwise).
    public init(headDim: Int, inverseFrequencies: [Float], attentionScaling: Float, maxPositions: Int) {
        precondition(inverseFrequencies.count == headDim / 2, "Rotary: \(inverseFrequencies.count) frequencies for head_dim \(headDim)")
        self.headDim = headDim
        self.maxPositions = maxPositions
        let half = headDim / 2
        var cosTable = [Float](repeating: 0, count: maxPositions * half)
        var sinTable = cosTable
        for i in 0..<half {
            let invFreq = inverseFrequencies[i]
            for p in 0..<maxPositions {
                let angle = Float(p) * invFreq
                cosTable[p * half + i] = Float(cos(Double(angle))) * attentionScaling
                sinTable[p * half + i] = Float(sin(Double(angle))) * attentionScaling
            }
        }
        self.cosTable = cosTable
        self.sinTable = sinTable
    }

    // MARK: - Forward

    /// Rotates every head of `x` in place. x `[rows * seqLen, heads * headDim]` with rows `stride`
    /// apart (default `heads * headDim`); the token at index `r * seqLen + t` has position `startPosition + t`.
    /// `afterRow(i)` runs on the thread that rotated token i, once its row is done (a per-row job
    /// riding on this pass, as in `RMSNorm`).
    public func forward(_ x: UnsafeMutablePointer<Float>, rows: Int, seqLen: Int, heads: Int, startPosition: Int = 0, stride: Int? = nil,
                        afterRow: ((Int) -> Void)? = nil) {
        rotate(x, rows: rows, seqLen: seqLen, heads: heads, startPosition: startPosition, stride: stride ?? heads * headDim, sinSign: 1,
               afterRow: afterRow)
    }

    // MARK: - Backward

    /// The transpose rotation applied in place to the gradient (rotation by -angle).
    public func backward(_ dx: UnsafeMutablePointer<Float>, rows: Int, seqLen: Int, heads: Int, startPosition: Int = 0, stride: Int? = nil) {
        rotate(dx, rows: rows, seqLen: seqLen, heads: heads, startPosition: startPosition, stride: stride ?? heads * headDim, sinSign: -1)
    }

    // MARK: - Explicit positions

    /// Rotates every head of `x` in place, token i at position `positions[i]` (packed rows whose
    /// segments restart their positions, as the shared-prompt layout does). x `[tokens, heads * headDim]`, rows `stride` apart.
    public func forward(_ x: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, tokens: Int, heads: Int, stride: Int? = nil,
                        afterRow: ((Int) -> Void)? = nil) {
        rotate(x, tokens: tokens, heads: heads, stride: stride ?? heads * headDim, sinSign: 1, afterRow: afterRow) { Int(positions[$0]) }
    }

    /// The transpose of `forward(_:positions:...)`, in place on the gradient.
    public func backward(_ dx: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, tokens: Int, heads: Int, stride: Int? = nil) {
        rotate(dx, tokens: tokens, heads: heads, stride: stride ?? heads * headDim, sinSign: -1) { Int(positions[$0]) }
    }

    private func rotate(_ x: UnsafeMutablePointer<Float>, rows: Int, seqLen: Int, heads: Int, startPosition: Int, stride width: Int, sinSign: Float,
                        afterRow: ((Int) -> Void)? = nil) {
        precondition(startPosition + seqLen <= maxPositions, "position past the rotary table")
        rotate(x, tokens: rows * seqLen, heads: heads, stride: width, sinSign: sinSign, afterRow: afterRow) { startPosition + $0 % seqLen }
    }

    @inline(__always)
    private func rotate(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, stride width: Int, sinSign: Float,
                        afterRow: ((Int) -> Void)? = nil, position positionOf: (Int) -> Int) {
        let half = headDim / 2
        cosTable.withUnsafeBufferPointer { cosBuffer in
            sinTable.withUnsafeBufferPointer { sinBuffer in
                let cosBase = cosBuffer.baseAddress!, sinBase = sinBuffer.baseAddress!
                Parallel.forChunks(tokens, minimumChunk: 64) { range in
                    for token in range {
                        let position = positionOf(token)
                        precondition(position >= 0 && position < maxPositions, "position past the rotary table")
                        let c = cosBase + position * half, s = sinBase + position * half
                        for h in 0..<heads {
                            let v = x + token * width + h * headDim
                            for i in 0..<half {
                                let a = v[i], b = v[i + half]
                                let sn = sinSign * s[i]
                                v[i] = a * c[i] - b * sn
                                v[i + half] = b * c[i] + a * sn
                            }
                        }
                        afterRow?(token)
                    }
                }
            }
        }
    }

    // MARK: - Naive oracle

    /// Literal transcription of transformers' `apply_rotary_pos_emb` for one head vector.
    public func forwardNaive(_ v: [Float], position: Int) -> [Float] {
        let half = headDim / 2
        var cosFull = [Float](repeating: 0, count: headDim), sinFull = cosFull
        for i in 0..<headDim {
            cosFull[i] = cosTable[position * half + i % half]
            sinFull[i] = sinTable[position * half + i % half]
        }
        let rotated = (0..<headDim).map { i in i < half ? -v[i + half] : v[i - half] }
        return (0..<headDim).map { i in v[i] * cosFull[i] + rotated[i] * sinFull[i] }
    }
}
