import CKernelSupport
import Foundation
import Kernels

/// Tensor bytes of a safetensors file (F32, F16, BF16, F64) to Float, straight from the mapped
/// file into the final buffer: blocks of 16 Ki elements (64 KiB written, cache-resident while
/// they are checked for NaN/infinity), the blocks spread over the process's worker threads.
enum SafetensorsConversion {
    static let block = 1 << 14

    /// Converts `count` elements of `dtype` at `source` into `output`; returns the index of the
    /// first non-finite value (nil if none, or when `checkFinite` is off). `source` need not be
    /// aligned (a writer that did not pad its header leaves the data region at any offset).
    static func toFloat(
        _ dtype: SafetensorsDType, from source: UnsafeRawPointer, into output: UnsafeMutablePointer<Float>, count: Int, checkFinite: Bool
    ) -> Int? {
        let firstBad = FirstIndex()
        Parallel.forChunks(count, minimumChunk: 1 << 18) { range in
            var scratch = [UInt16]()
            var start = range.lowerBound
            while start < range.upperBound {
                let end = Swift.min(start + block, range.upperBound)
                convert(dtype, from: source, into: output, start..<end, scratch: &scratch)
                if checkFinite, let bad = firstNonFinite(output, start..<end) {
                    firstBad.offer(bad)
                    return
                }
                start = end
            }
        }
        return firstBad.value
    }

    /// One block: elements `range` of the tensor.
    private static func convert(
        _ dtype: SafetensorsDType, from source: UnsafeRawPointer, into output: UnsafeMutablePointer<Float>, _ range: Range<Int>,
        scratch: inout [UInt16]
    ) {
        let count = range.count, out = output + range.lowerBound
        switch dtype {
        case .F32:
            UnsafeMutableRawPointer(out).copyMemory(from: source + 4 * range.lowerBound, byteCount: 4 * count)
        case .F64:
            let from = source + 8 * range.lowerBound
            for i in 0..<count { out[i] = Float(from.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .F16, .BF16:
            let convert = dtype == .F16 ? dpo_f16_to_f32 : dpo_bf16_to_f32
            let from = source + 2 * range.lowerBound
            if Int(bitPattern: from) % MemoryLayout<UInt16>.alignment == 0 {
                convert(from.assumingMemoryBound(to: UInt16.self), out, count)
            } else {
                if scratch.count < count { scratch = [UInt16](repeating: 0, count: block) }
                scratch.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: from, byteCount: 2 * count) }
                scratch.withUnsafeBufferPointer { convert($0.baseAddress!, out, count) }
            }
        default:
            preconditionFailure("SafetensorsConversion: \(dtype) is not a float type (checked by the caller)")
        }
    }

    /// The first index in `range` whose value is NaN or infinite (all exponent bits set).
    private static func firstNonFinite(_ values: UnsafeMutablePointer<Float>, _ range: Range<Int>) -> Int? {
        // A branch-free pass the compiler vectorises; the index is searched only when one is found.
        var any: UInt32 = 0
        for i in range { any |= (values[i].bitPattern & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0 }
        guard any != 0 else { return nil }
        return range.first { !values[$0].isFinite }
    }
}

/// The smallest index offered by any thread.
private final class FirstIndex: @unchecked Sendable {
    private let lock = NSLock()
    private var smallest: Int?

    func offer(_ index: Int) {
        lock.lock()
        defer { lock.unlock() }
        smallest = Swift.min(smallest ?? index, index)
    }

    var value: Int? {
        lock.lock()
        defer { lock.unlock() }
        return smallest
    }
}
