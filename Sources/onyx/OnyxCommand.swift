import ArgumentParser
import Foundation
import Onyx

@main
struct OnyxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onyx",
        abstract: "Load ONNX models exported from PyTorch and run them on the CPU.",
        subcommands: [RunCommand.self, InspectCommand.self, BenchCommand.self, QuantizeCommand.self, ServeCommand.self, TestCommand.self, OperatorsCommand.self])
}

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Threads per run (default: all online CPUs).")
    var threads: Int?

    @Option(name: .long, help: "Graph optimizations: none, basic or all.")
    var optimization: String = OptimizationLevel.all.rawValue

    @Option(name: .long, help: "Micro-kernel variant: portable, avx2 or avx512 (default: best this CPU runs).")
    var isa: String?

    func sessionOptions() throws -> SessionOptions {
        guard let level = OptimizationLevel(rawValue: optimization) else {
            throw ValidationError("--optimization must be none, basic or all, not '\(optimization)'")
        }
        var options = SessionOptions(threadCount: threads, optimizationLevel: level)
        if let isa {
            guard let variant = KernelISA(rawValue: isa) else {
                throw ValidationError("--isa must be portable, avx2 or avx512, not '\(isa)'")
            }
            options.isa = variant
        }
        return options
    }
}

/// Runs `body`, turning any error into one line on standard error and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as OnyxError {
        FileHandle.standardError.write(Data("onyx: error: \(error.message)\n".utf8))
        throw ExitCode(1)
    } catch let error as CommandLineInputError {
        FileHandle.standardError.write(Data("onyx: error: \(error.message)\n".utf8))
        throw ExitCode(1)
    }
}

/// A problem with a file or argument given on the command line.
struct CommandLineInputError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
