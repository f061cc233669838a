import Kernels

/// Array-like access to a `ScalarBuffer`, for the long-lived buffers of training (gradients,
/// fp32 master weights, optimizer moments [P]) that callers used to hold as Swift arrays:
/// `withUnsafeBufferPointer` keeps their call sites as they were.
extension ScalarBuffer {
    /// The whole buffer [count].
    public var buffer: UnsafeMutableBufferPointer<Scalar> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: pointer, count: count))
    }

    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try body(buffer)
    }

    /// A copy as an array (an allocation of `count`: for checkpoints and tests, never per step).
    public var array: [Scalar] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Overwrites the whole buffer with `values` (same count).
    public func update(from values: UnsafeBufferPointer<Scalar>) {
        precondition(values.count == count, "ScalarBuffer.update: \(values.count) values for a buffer of \(count)")
        if let base = values.baseAddress { pointer.update(from: base, count: count) }
    }
}

extension ScalarBuffer where Scalar == Float {
    /// A buffer holding a copy of `values` (mapped pages from 2 MiB on; each page is touched once, by the copy).
    public convenience init(copying values: UnsafeBufferPointer<Float>) {
        self.init(count: values.count)
        update(from: values)
    }

    /// Sets every element to 0, the memory split over `BLAS.threads` threads.
    public func setToZero() {
        Parallel.forChunks(count, minimumChunk: 1 << 16) { range in
            (pointer + range.lowerBound).update(repeating: 0, count: range.count)
        }
    }
}
