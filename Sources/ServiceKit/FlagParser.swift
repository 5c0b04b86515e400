import Glibc

/// A program's `--kebab-case` flags, each taking one value, parsed without a package: the
/// listener links neither swift-argument-parser nor the FoundationEssentials it brings
/// (about 2 MiB of resident memory). Help and errors read the way swift-argument-parser
/// writes them (an `OVERVIEW`, `USAGE` and `OPTIONS` screen wrapped at 80 columns; `Error:`
/// lines and exit status 64 for a bad command line), so scripts and users see no change.
public struct FlagParser: Sendable {
    /// One flag: `--name <name>` and its help line.
    public struct Flag: Sendable {
        public let name: String
        public let help: String

        public init(_ name: String, help: String) {
            self.name = name
            self.help = help
        }

        var label: String { "--\(name) <\(name)>" }
    }

    /// What a command line asked for.
    public enum Outcome: Equatable, Sendable {
        /// The flags given (by name, without dashes; the last one wins).
        case values([String: String])
        /// `-h` / `--help`: print `help` and exit 0.
        case help
        /// A bad command line: print the message to stderr and exit 64.
        case usageError(String)
    }

    public let command: String
    public let abstract: String
    public let flags: [Flag]

    public init(command: String, abstract: String, flags: [Flag]) {
        self.command = command
        self.abstract = abstract
        self.flags = flags
    }

    /// Parses `arguments` (without the program name): `--name value` or `--name=value`.
    public func parse(_ arguments: [String]) -> Outcome {
        var values: [String: String] = [:]
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            i += 1
            if argument == "-h" || argument == "--help" { return .help }
            guard argument.hasPrefix("-"), argument.count > 1 else {
                return .usageError(usageError("Unexpected argument '\(argument)'"))
            }
            var name = String(argument.drop { $0 == "-" })
            var value: String?
            if argument.hasPrefix("--"), let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard argument.hasPrefix("--"), let flag = flags.first(where: { $0.name == name }) else {
                return .usageError(usageError("Unknown option '\(argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument)'"))
            }
            if value == nil, i < arguments.count, !(arguments[i].hasPrefix("-") && arguments[i].count > 1) {
                value = arguments[i]
                i += 1
            }
            guard let value else {
                return .usageError("Error: Missing value for '\(flag.label)'\nHelp:  \(flag.label)  \(flag.help)\n" + usageFooter)
            }
            values[name] = value
        }
        return .values(values)
    }

    private var usageFooter: String {
        "Usage: \(command) <options>\n  See '\(command) --help' for more information.\n"
    }

    private func usageError(_ message: String) -> String { "Error: \(message)\n" + usageFooter }

    /// The help screen.
    public var help: String {
        var out = Self.wrap(first: "OVERVIEW: ", abstract, indent: 0)
        out += "\nUSAGE: \(command) <options>\n\nOPTIONS:\n"
        for (label, help) in flags.map({ ($0.label, $0.help) }) + [("-h, --help", "Show help information.")] {
            let head = "  " + label
            if head.count < Self.helpColumn {
                out += Self.wrap(first: head + String(repeating: " ", count: Self.helpColumn - head.count), help, indent: Self.helpColumn)
            } else {
                out += head + "\n" + Self.wrap(first: String(repeating: " ", count: Self.helpColumn), help, indent: Self.helpColumn)
            }
        }
        return out + "\n"
    }

    static let helpColumn = 26
    static let width = 80

    /// `text` after `prefix`, broken at spaces into lines shorter than `width` columns,
    /// continuation lines indented by `indent`; each line ends with a newline.
    static func wrap(first prefix: String, _ text: String, indent: Int) -> String {
        var out = ""
        var line = prefix
        var hasWord = false
        for word in text.split(separator: " ") {
            if !hasWord {
                line += word
                hasWord = true
            } else if line.count + 1 + word.count < width {
                line += " " + word
            } else {
                out += line + "\n"
                line = String(repeating: " ", count: indent) + word
            }
        }
        return out + line + "\n"
    }

    /// Parses the process's own arguments; prints help and exits 0, or prints the error and
    /// exits 64, as swift-argument-parser does.
    public func parseOrExit() -> [String: String] {
        switch parse(Array(CommandLine.arguments.dropFirst())) {
        case .values(let values):
            return values
        case .help:
            Self.write(help, to: 1)
            exit(0)
        case .usageError(let message):
            Self.write(message, to: 2)
            exit(64)
        }
    }

    static func write(_ text: String, to fd: Int32) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }
}
