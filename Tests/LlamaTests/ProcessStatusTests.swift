import XCTest

@testable import Llama

/// Peak RSS as the benches and the trainer read it from /proc/self/status.
final class ProcessStatusTests: XCTestCase {
    func testKilobyteFieldsParseWhateverTheirWidth() {
        // Below 10^7 KiB the kernel pads with spaces after the tab; from 9.5 GiB on it does not
        // (a 0.5B-parameter full fine-tuning run peaked there and its bench printed 0 MB).
        let status = "Name:\tdpo\nVmPeak:\t 1234568 kB\nVmHWM:\t12345678 kB\nVmRSS:\t  812345 kB\n"
        XCTAssertEqual(ModelBenchmark.statusKilobytes("VmHWM", in: status), 12_345_678)
        XCTAssertEqual(ModelBenchmark.statusKilobytes("VmRSS", in: status), 812_345)
        XCTAssertEqual(ModelBenchmark.statusKilobytes("VmPeak", in: status), 1_234_568)
        XCTAssertNil(ModelBenchmark.statusKilobytes("VmSwap", in: status))
        XCTAssertGreaterThan(ModelBenchmark.peakResidentKilobytes(), 0, "this process has a peak RSS")
    }
}
