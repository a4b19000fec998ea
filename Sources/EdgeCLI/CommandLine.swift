// EdgeCLI: a small declarative argv parser with generated help, so the agent needs no Foundation.

/// A command-line option: `--name value`, `--name=value`, `-n value`, or a flag `--name`.
public struct OptionSpec: Sendable {
    public var name: String
    public var short: Character?
    /// Placeholder shown in help (`<addr>`); nil makes this a flag (no value).
    public var valueName: String?
    public var help: String
    public var defaultValue: String?
    public var repeatable: Bool

    public init(
        _ name: String, short: Character? = nil, value valueName: String? = nil, help: String,
        default defaultValue: String? = nil, repeatable: Bool = false
    ) {
        self.name = name
        self.short = short
        self.valueName = valueName
        self.help = help
        self.defaultValue = defaultValue
        self.repeatable = repeatable
    }

    public static func flag(_ name: String, short: Character? = nil, help: String) -> OptionSpec {
        OptionSpec(name, short: short, value: nil, help: help)
    }

    public var isFlag: Bool { valueName == nil }
}

/// A positional argument.
public struct ArgumentSpec: Sendable {
    public var name: String
    public var help: String
    public var optional: Bool
    /// Takes all remaining positionals (must be last).
    public var variadic: Bool

    public init(_ name: String, help: String, optional: Bool = false, variadic: Bool = false) {
        self.name = name
        self.help = help
        self.optional = optional
        self.variadic = variadic
    }
}

/// A command or a group of subcommands.
public struct CommandSpec: Sendable {
    public var name: String
    public var abstract: String
    public var discussion: String
    public var examples: [String]
    public var options: [OptionSpec]
    public var arguments: [ArgumentSpec]
    public var subcommands: [CommandSpec]

    public init(
        _ name: String, abstract: String, discussion: String = "", examples: [String] = [],
        options: [OptionSpec] = [], arguments: [ArgumentSpec] = [], subcommands: [CommandSpec] = []
    ) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        self.examples = examples
        self.options = options
        self.arguments = arguments
        self.subcommands = subcommands
    }
}

/// The parsed values of one command invocation.
public struct ParsedArguments: Sendable, Equatable {
    public var options: [String: [String]] = [:]
    public var flags: Set<String> = []
    public var positionals: [String: [String]] = [:]

    public init() {}

    public func value(_ name: String) -> String? { options[name]?.last ?? positionals[name]?.first }
    public func values(_ name: String) -> [String] { options[name] ?? positionals[name] ?? [] }
    public func flag(_ name: String) -> Bool { flags.contains(name) }
}

/// What the parser decided.
public enum ParseOutcome: Sendable, Equatable {
    /// Run the command at `path` (e.g. `["node", "run"]`) with these arguments.
    case run(path: [String], arguments: ParsedArguments)
    /// Print this help text and exit 0.
    case help(String)
    /// Print the version and exit 0.
    case version
    /// Print this error (with usage) to stderr and exit 2.
    case usageError(String)
}

public enum CommandLineParser {
    /// Parses `argv` (without the program name) against `root`.
    public static func parse(_ argv: [String], root: CommandSpec, programName: String) -> ParseOutcome {
        var command = root
        var path: [String] = []
        var index = 0
        // Descend into subcommands.
        while index < argv.count, !command.subcommands.isEmpty {
            let word = argv[index]
            if word == "--help" || word == "-h" || word == "help" {
                return .help(helpText(for: command, path: path, programName: programName))
            }
            if word == "--version" && path.isEmpty { return .version }
            guard let sub = command.subcommands.first(where: { $0.name == word }) else {
                let names = command.subcommands.map(\.name).joined(separator: ", ")
                return .usageError(
                    "unknown command '\(word)' (expected one of: \(names))\n\n"
                        + usage(for: command, path: path, programName: programName))
            }
            command = sub
            path.append(word)
            index += 1
        }
        if !command.subcommands.isEmpty {
            return .help(helpText(for: command, path: path, programName: programName))
        }

        var parsed = ParsedArguments()
        var positionals: [String] = []
        var onlyPositionals = false
        while index < argv.count {
            let word = argv[index]
            index += 1
            if onlyPositionals || !word.hasPrefix("-") || word == "-" {
                positionals.append(word)
                continue
            }
            if word == "--" {
                onlyPositionals = true
                continue
            }
            if word == "--help" || word == "-h" {
                return .help(helpText(for: command, path: path, programName: programName))
            }
            var name: Substring
            var inlineValue: String?
            var spec: OptionSpec?
            if word.hasPrefix("--") {
                name = word.dropFirst(2)
                if let eq = name.firstIndex(of: "=") {
                    inlineValue = String(name[name.index(after: eq)...])
                    name = name[..<eq]
                }
                spec = command.options.first { $0.name == name }
            } else {
                guard word.count == 2, let c = word.dropFirst().first else {
                    return .usageError("unknown option '\(word)'\n\n" + usage(for: command, path: path, programName: programName))
                }
                spec = command.options.first { $0.short == c }
                name = Substring(spec?.name ?? String(c))
            }
            guard let spec else {
                return .usageError("unknown option '\(word)'\n\n" + usage(for: command, path: path, programName: programName))
            }
            if spec.isFlag {
                guard inlineValue == nil else { return .usageError("option '--\(spec.name)' takes no value") }
                parsed.flags.insert(spec.name)
                continue
            }
            let value: String
            if let inlineValue {
                value = inlineValue
            } else {
                guard index < argv.count else {
                    return .usageError("option '--\(spec.name)' needs a value \(spec.valueName ?? "")")
                }
                value = argv[index]
                index += 1
            }
            if !spec.repeatable, parsed.options[spec.name] != nil {
                return .usageError("option '--\(spec.name)' given more than once")
            }
            parsed.options[spec.name, default: []].append(value)
        }
        // Defaults.
        for option in command.options where option.defaultValue != nil && parsed.options[option.name] == nil {
            parsed.options[option.name] = [option.defaultValue!]
        }
        // Positionals.
        var position = 0
        for argument in command.arguments {
            if argument.variadic {
                let rest = Array(positionals[min(position, positionals.count)...])
                if rest.isEmpty && !argument.optional {
                    return .usageError("missing <\(argument.name)>\n\n" + usage(for: command, path: path, programName: programName))
                }
                parsed.positionals[argument.name] = rest
                position = positionals.count
                continue
            }
            if position < positionals.count {
                parsed.positionals[argument.name] = [positionals[position]]
                position += 1
            } else if !argument.optional {
                return .usageError("missing <\(argument.name)>\n\n" + usage(for: command, path: path, programName: programName))
            }
        }
        if position < positionals.count {
            return .usageError(
                "unexpected argument '\(positionals[position])'\n\n" + usage(for: command, path: path, programName: programName))
        }
        return .run(path: path, arguments: parsed)
    }

    /// One-line usage.
    public static func usage(for command: CommandSpec, path: [String], programName: String) -> String {
        var parts = [programName] + path
        if !command.subcommands.isEmpty {
            parts.append("<command>")
        } else {
            if !command.options.isEmpty { parts.append("[options]") }
            for argument in command.arguments {
                let base = argument.variadic ? "<\(argument.name)>..." : "<\(argument.name)>"
                parts.append(argument.optional ? "[\(base)]" : base)
            }
        }
        return "USAGE: " + parts.joined(separator: " ")
    }

    /// Full help text for a command.
    public static func helpText(for command: CommandSpec, path: [String], programName: String) -> String {
        var out = "OVERVIEW: \(command.abstract)\n"
        if !command.discussion.isEmpty { out += "\n\(command.discussion)\n" }
        out += "\n" + usage(for: command, path: path, programName: programName) + "\n"
        func row(_ left: String, _ right: String) -> String {
            let pad = left.count < 28 ? String(repeating: " ", count: 28 - left.count) : "\n" + String(repeating: " ", count: 30)
            return "  \(left)\(pad)\(right)\n"
        }
        if !command.subcommands.isEmpty {
            out += "\nCOMMANDS:\n"
            for sub in command.subcommands { out += row(sub.name, sub.abstract) }
            out += "\n  See '\(([programName] + path).joined(separator: " ")) <command> --help' for details.\n"
        }
        if !command.arguments.isEmpty {
            out += "\nARGUMENTS:\n"
            for argument in command.arguments { out += row("<\(argument.name)>", argument.help) }
        }
        var options = command.options
        options.append(.flag("help", short: "h", help: "Show help information."))
        if path.isEmpty { options.append(.flag("version", help: "Show the version.")) }
        out += "\nOPTIONS:\n"
        for option in options {
            var left = option.short.map { "-\($0), " } ?? ""
            left += "--\(option.name)"
            if let valueName = option.valueName { left += " <\(valueName)>" }
            var right = option.help
            if let d = option.defaultValue { right += " (default: \(d))" }
            if option.repeatable { right += " (repeatable)" }
            out += row(left, right)
        }
        if !command.examples.isEmpty {
            out += "\nEXAMPLES:\n"
            for example in command.examples { out += "  \(example)\n" }
        }
        return out
    }
}
