import ArgumentParser
import Llama
import Preference

// The library's choice enums parse as option values directly: ArgumentParser lists their
// cases in --help and names the flag and the valid values when one is wrong.
extension Precision: ExpressibleByArgument {}
extension PreferenceLossKind: ExpressibleByArgument {}
