import Foundation

/// One run of the built `dpo` binary (`MPIJob.dpoBinary`) without MPI, its standard output and
/// standard error captured apart (the CLI tests look at each stream on its own).
public struct DPORun {
    public var status: Int32
    public var standardOutput: String
    public var standardError: String

    public static func run(_ arguments: [String]) throws -> DPORun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try MPIJob.dpoBinary())
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return DPORun(status: process.terminationStatus, standardOutput: String(decoding: outData, as: UTF8.self),
                      standardError: String(decoding: errData, as: UTF8.self))
    }
}
