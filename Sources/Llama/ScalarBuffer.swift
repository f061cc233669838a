/// An owned, fixed-size, zero-initialised buffer of scalars (arena storage that is allocated
/// once and then only reused).
final class ScalarBuffer<Scalar> {
    let count: Int
    let pointer: UnsafeMutablePointer<Scalar>

    init(count: Int, zero: Scalar) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: zero, count: max(count, 1))
    }

    deinit { pointer.deallocate() }
}

typealias FloatBuffer = ScalarBuffer<Float>
typealias HalfBuffer = ScalarBuffer<UInt16>

extension ScalarBuffer where Scalar == Float {
    convenience init(count: Int) { self.init(count: count, zero: 0) }
}

extension ScalarBuffer where Scalar == UInt16 {
    convenience init(count: Int) { self.init(count: count, zero: 0) }
}
