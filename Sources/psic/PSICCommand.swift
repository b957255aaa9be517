import ArgumentParser

@main
struct PSICCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "psic",
        abstract: "Progressive synonymous image compression: a learned codec on Vulkan or the CPU.",
        discussion: """
            A stream carries the first l synonymous levels of an image; decoding a stream (or any cut \
            of it) samples the missing levels from the model's prior, so every cut decodes to a plausible \
            image and --seed chooses which one.
            """,
        subcommands: [EncodeCommand.self, DecodeCommand.self, InfoCommand.self, TruncateCommand.self,
                      BenchCommand.self, DevicesCommand.self, ServeCommand.self])
}
