/// How the model stores its working weights and saved activations.
///
/// `fp32`: everything float32. `fp16`: binary16 storage of the working weights and of every
/// activation saved for backward; every kernel widens to float32 and accumulates in float32,
/// and the log-softmax is float32.
public enum Precision: String, Codable, CaseIterable, Sendable {
    case fp32, fp16
}
