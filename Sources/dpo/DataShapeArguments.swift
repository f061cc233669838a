import ArgumentParser
import Preference
import Tokenization
import Training

/// `--chat-template` and the key names, for the commands that read preference data the way
/// `dpo train` does (`dpo logps`, `dpo eval`).
struct DataShapeArguments: ParsableArguments {
    @Option(help: ArgumentHelp("Chat template for conversational data: chatml, llama3, none, or auto = recognised from tokenizer_config.json", valueName: "NAME"))
    var chatTemplate = "auto"
    @Option(help: ArgumentHelp("Key of the prompt in the data file", valueName: "KEY"))
    var promptKey = "prompt"
    @Option(help: ArgumentHelp("Key of the chosen completion", valueName: "KEY"))
    var chosenKey = "chosen"
    @Option(help: ArgumentHelp("Key of the rejected completion", valueName: "KEY"))
    var rejectedKey = "rejected"

    func validate() throws {
        if chatTemplate != "auto" && ChatTemplate(rawValue: chatTemplate) == nil {
            throw ValidationError("--chat-template \(chatTemplate): expected chatml, llama3, none or auto")
        }
    }

    var dataShape: ScoringReports.DataShape {
        var shape = ScoringReports.DataShape()
        shape.chatTemplate = chatTemplate == "auto" ? nil : ChatTemplate(rawValue: chatTemplate)
        shape.keys = DatasetKeys(prompt: promptKey, chosen: chosenKey, rejected: rejectedKey)
        return shape
    }
}
