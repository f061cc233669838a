import Llama

/// What to try after a numerical failure, fitted to the run: advising `--precision fp32` to a
/// run that is fp32 already contradicts the command line (issue 16).
enum NumericalAdvice {
    /// "Lower --lr, use --precision fp32, or check the data" (the middle part only for fp16,
    /// or when the precision is not known).
    static func remedies(precision: Precision?) -> String {
        precision == .fp32 ? "Lower --lr or check the data" : "Lower --lr, use --precision fp32, or check the data"
    }
}
