import Foundation
import Yams

/// `--config FILE`: a YAML or JSON mapping whose keys are `dpo train` flag names
/// (`lr: 5e-7`, `batch-pairs: 4`, `batch_pairs` also accepted); flags given on the command
/// line override it.
public enum TrainingConfigFile {
    /// The file's settings as (key, string value) pairs in file order.
    public static func read(_ url: URL) throws -> [(key: String, value: String)] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw TrainingError.invalidOption("--config \(url.path): cannot read it (\(error.localizedDescription))")
        }
        // JSON is YAML, so one parser covers both.
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw TrainingError.invalidOption("--config \(url.path): not valid YAML/JSON: \(error)")
        }
        guard let node else { return [] }
        guard let mapping = node.mapping else {
            throw TrainingError.invalidOption("--config \(url.path): the top level must be a mapping of option names to values")
        }
        var out: [(key: String, value: String)] = []
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else {
                throw TrainingError.invalidOption("--config \(url.path) line \(keyNode.mark?.line ?? 0): keys must be strings")
            }
            guard let value = valueNode.scalar?.string else {
                throw TrainingError.invalidOption(
                    "--config \(url.path) line \(valueNode.mark?.line ?? 0): '\(key)' must be a single value, not a list or mapping")
            }
            if ["", "~", "null"].contains(value) { continue }  // YAML null: leave the default
            out.append((key, value))
        }
        return out
    }

    /// Applies the file's settings to `parameters`, naming the file and key in errors.
    public static func apply(_ url: URL, to parameters: inout TrainingParameters) throws {
        for (key, value) in try read(url) {
            try parameters.apply(key, value, source: "--config \(url.path)")
        }
    }
}
