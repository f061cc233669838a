import ArgumentParser
import Preference
import Tokenization
import Training

/// `--chat-template` and the key names, for the commands that read preference data the way
/// `dpo train` does (`dpo logps`, `dpo eval`).
struct DataShapeArguments: ParsableArguments {
    @Option(help: ArgumentHelp("Chat template for conversational data: auto = the model's chat_template.jinja, else tokenizer_config.json; or chatml, llama3, none, a .jinja file", valueName: "NAME|FILE"))
    var chatTemplate = "auto"
    @Option(help: ArgumentHelp("Key of the prompt in the data file", valueName: "KEY"))
    var promptKey = "prompt"
    @Option(help: ArgumentHelp("Key of the chosen completion", valueName: "KEY"))
    var chosenKey = "chosen"
    @Option(help: ArgumentHelp("Key of the rejected completion", valueName: "KEY"))
    var rejectedKey = "rejected"

    func validate() throws {
        if chatTemplate != "auto" {
            do { _ = try ChatTemplate.named(chatTemplate) } catch { throw ValidationError("\(error)") }
        }
    }

    var dataShape: ScoringReports.DataShape {
        var shape = ScoringReports.DataShape()
        shape.chatTemplate = chatTemplate == "auto" ? nil : try? ChatTemplate.named(chatTemplate)
        shape.keys = DatasetKeys(prompt: promptKey, chosen: chosenKey, rejected: rejectedKey)
        return shape
    }
}
