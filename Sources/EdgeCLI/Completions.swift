// Shell completions and the manual page, generated from the same command tree that produces --help.

/// Generates completion scripts for bash, zsh and fish from a ``CommandSpec`` tree: subcommands, then the options of
/// the command typed so far (an option's value is not completed; bash and zsh fall back to file names).
public enum ShellCompletion {
    public enum Shell: String, Sendable, CaseIterable {
        case bash, zsh, fish
    }

    public static func script(_ shell: Shell, root: CommandSpec) -> String {
        switch shell {
        case .bash: bash(root)
        case .zsh: zsh(root)
        case .fish: fish(root)
        }
    }

    /// Every command path (`ockam-edge`, `ockam-edge/node`, `ockam-edge/node/run`, …) with its spec.
    static func paths(_ root: CommandSpec) -> [(path: String, spec: CommandSpec)] {
        var result: [(String, CommandSpec)] = []
        func visit(_ spec: CommandSpec, _ path: String) {
            result.append((path, spec))
            for sub in spec.subcommands { visit(sub, path + "/" + sub.name) }
        }
        visit(root, root.name)
        return result
    }

    /// What may follow the command at a path: its subcommands and its options (`--help` everywhere, `--version` at
    /// the top).
    static func words(_ spec: CommandSpec, isRoot: Bool) -> [String] {
        var words = spec.subcommands.map(\.name) + spec.options.map { "--" + $0.name } + ["--help"]
        if isRoot { words.append("--version") }
        return words
    }

    private static func function(_ root: CommandSpec) -> String {
        "_" + String(root.name.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    /// A word safe inside single quotes.
    private static func quoted(_ text: String) -> String {
        "'" + text.map { $0 == "'" ? "'\\''" : String($0) }.joined() + "'"
    }

    static func bash(_ root: CommandSpec) -> String {
        let all = paths(root)
        let name = function(root)
        var out = "# bash completion for \(root.name) (generated: \(root.name) completions bash)\n"
        out += "\(name)() {\n"
        out += "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmdpath=\(quoted(root.name)) word i\n"
        out += "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
        out += "        word=\"${COMP_WORDS[i]}\"\n"
        out += "        case \"$cmdpath/$word\" in\n"
        out += "            " + all.dropFirst().map { quoted($0.path) }.joined(separator: "|") + ") cmdpath=\"$cmdpath/$word\" ;;\n"
        out += "        esac\n"
        out += "    done\n"
        out += "    local words=''\n"
        out += "    case \"$cmdpath\" in\n"
        for (path, spec) in all {
            out += "        \(quoted(path))) words=\(quoted(words(spec, isRoot: path == root.name).joined(separator: " "))) ;;\n"
        }
        out += "    esac\n"
        out += "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
        out += "}\n"
        out += "complete -o default -F \(name) \(root.name)\n"
        return out
    }

    static func zsh(_ root: CommandSpec) -> String {
        let all = paths(root)
        let name = function(root)
        var out = "#compdef \(root.name)\n# zsh completion for \(root.name) (generated: \(root.name) completions zsh)\n"
        out += "\(name)() {\n"
        out += "    local cmdpath=\(quoted(root.name)) word\n"
        out += "    for word in \"${(@)words[2,CURRENT-1]}\"; do\n"
        out += "        case \"$cmdpath/$word\" in\n"
        out += "            (" + all.dropFirst().map { quoted($0.path) }.joined(separator: "|") + ") cmdpath=\"$cmdpath/$word\" ;;\n"
        out += "        esac\n"
        out += "    done\n"
        out += "    case \"$cmdpath\" in\n"
        for (path, spec) in all {
            let candidates = words(spec, isRoot: path == root.name).map(quoted).joined(separator: " ")
            out += "        (\(quoted(path))) compadd -- \(candidates) ;;\n"
        }
        out += "    esac\n"
        out += "    _files\n"
        out += "}\n"
        out += "compdef \(name) \(root.name)\n"
        return out
    }

    static func fish(_ root: CommandSpec) -> String {
        let all = paths(root)
        let name = function(root)
        var out = "# fish completion for \(root.name) (generated: \(root.name) completions fish)\n"
        out += "function \(name)_path\n"
        out += "    set -l cmdpath \(quoted(root.name))\n"
        out += "    set -l known " + all.dropFirst().map { quoted($0.path) }.joined(separator: " ") + "\n"
        out += "    for word in (commandline -opc)[2..-1]\n"
        out += "        if contains -- \"$cmdpath/$word\" $known\n"
        out += "            set cmdpath \"$cmdpath/$word\"\n"
        out += "        end\n"
        out += "    end\n"
        out += "    echo $cmdpath\n"
        out += "end\n"
        out += "complete -c \(root.name) -f\n"
        for (path, spec) in all {
            let condition = quoted("test (\(name)_path) = \(quoted(path))")
            for sub in spec.subcommands {
                out += "complete -c \(root.name) -n \(condition) -a \(quoted(sub.name)) -d \(quoted(sub.abstract))\n"
            }
            for option in spec.options {
                out += "complete -c \(root.name) -n \(condition) -l \(quoted(option.name))"
                    + (option.isFlag ? "" : " -r") + " -d \(quoted(option.help))\n"
            }
        }
        return out
    }
}

/// The manual page, ockam-edge(1), in roff: every command with its abstract, discussion, arguments, options and
/// examples, from the command tree `--help` is made from (so the two cannot drift).
public enum ManualPage {
    public static func roff(_ root: CommandSpec, version: String) -> String {
        var out = ".TH \(escape(root.name.uppercased())) 1 \"\" \"\(escape(root.name)) \(escape(version))\" \"User Commands\"\n"
        out += ".SH NAME\n\(escape(root.name)) \\- \(escape(root.abstract))\n"
        out += ".SH SYNOPSIS\n.B \(escape(root.name))\n\\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]\n"
        out += ".SH DESCRIPTION\n" + paragraph(root.discussion.isEmpty ? root.abstract : root.discussion)
        out += "Every command accepts \\fB\\-\\-help\\fR.\n"
        out += ".SH COMMANDS\n"
        for (path, spec) in ShellCompletion.paths(root).dropFirst() where spec.subcommands.isEmpty {
            let words = path.split(separator: "/").map(String.init)
            let usage = (words + spec.arguments.map { $0.optional ? "[\($0.name)]" : "<\($0.name)>" })
                .joined(separator: " ")
            out += ".SS \"\(escape(usage))\"\n" + paragraph(spec.abstract)
            if !spec.discussion.isEmpty { out += ".PP\n" + paragraph(spec.discussion) }
            for argument in spec.arguments {
                out += ".TP\n.I \(escape(argument.name))\n" + paragraph(argument.help)
            }
            for option in spec.options {
                let short = option.short.map { "\\fB\\-\(escape(String($0)))\\fR, " } ?? ""
                let value = option.valueName.map { " \\fI\(escape($0))\\fR" } ?? ""
                out += ".TP\n\(short)\\fB\\-\\-\(escape(option.name))\\fR\(value)\n"
                var help = option.help
                if let value = option.defaultValue { help += " (default: \(value))" }
                if option.repeatable { help += " May be repeated." }
                out += paragraph(help)
            }
            if !spec.examples.isEmpty {
                out += ".PP\nExamples:\n.RS\n.nf\n" + spec.examples.map { escape($0) + "\n" }.joined() + ".fi\n.RE\n"
            }
        }
        if !root.examples.isEmpty {
            out += ".SH EXAMPLES\n.nf\n" + root.examples.map { escape($0) + "\n" }.joined() + ".fi\n"
        }
        out += ".SH SEE ALSO\nThe documentation in /usr/share/doc/\(escape(root.name)) and https://github.com/build-trust/ockam\n"
        return out
    }

    /// One entry of a file-format page: a key, its type, its default and its meaning (Markdown: `code` in backticks).
    public struct FileKey: Sendable {
        public var key: String
        public var type: String
        public var defaultValue: String
        public var meaning: String

        public init(key: String, type: String, defaultValue: String, meaning: String) {
            self.key = key
            self.type = type
            self.defaultValue = defaultValue
            self.meaning = meaning
        }
    }

    /// A section 5 manual page for a configuration file: name, synopsis (the file's path), description paragraphs
    /// (Markdown code spans allowed), every key with its type and default, an example, and see-also references.
    public static func fileFormatRoff(
        name: String, summary: String, path: String, version: String, package: String,
        description: [String], keys: [FileKey], example: [String], seeAlso: String
    ) -> String {
        var out = ".TH \(escape(name.uppercased())) 5 \"\" \"\(escape(package)) \(escape(version))\" \"File Formats\"\n"
        out += ".ad l\n.nh\n.SH NAME\n\(escape(name)) \\- \(escape(summary))\n"
        out += ".SH SYNOPSIS\n.I \(escape(path))\n"
        out += ".SH DESCRIPTION\n"
        out += description.map { rawParagraph(markdown($0)) }.joined(separator: ".PP\n")
        out += ".SH KEYS\n"
        for key in keys {
            out += ".TP\n\\fB\(escape(key.key))\\fR (\(markdown(key.type)); default: \(markdown(key.defaultValue)))\n"
            out += rawParagraph(markdown(key.meaning))
        }
        if !example.isEmpty {
            out += ".SH EXAMPLE\n.RS\n.nf\n" + example.map { escape($0) + "\n" }.joined() + ".fi\n.RE\n"
        }
        out += ".SH SEE ALSO\n" + rawParagraph(markdown(seeAlso))
        return out
    }

    /// Escaped text with Markdown code spans (`x`) in bold.
    static func markdown(_ text: String) -> String {
        text.split(separator: "`", omittingEmptySubsequences: false).enumerated().map { index, part in
            index % 2 == 1 ? "\\fB" + escape(String(part)) + "\\fR" : escape(String(part))
        }.joined()
    }

    /// Text as roff lines: escapes, and no line starting with a control character.
    static func paragraph(_ text: String) -> String {
        rawParagraph(escape(text))
    }

    /// Already escaped roff text as lines, none starting with a control character.
    static func rawParagraph(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let escaped = String(line.trimmingLeadingSpaces)
            return (escaped.hasPrefix(".") || escaped.hasPrefix("'") ? "\\&" : "") + escaped + "\n"
        }.joined()
    }

    /// Backslashes and hyphens as roff wants them; anything beyond ASCII as `\[uXXXX]` (troff reads bytes, not UTF-8).
    static func escape(_ text: String) -> String {
        text.unicodeScalars.map { c -> String in
            switch c {
            case "\\": return "\\e"
            case "-": return "\\-"
            case _ where c.value > 0x7e:
                let hex = String(c.value, radix: 16, uppercase: true)
                return "\\[u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + "]"
            default: return String(c)
            }
        }.joined()
    }
}

extension Substring {
    fileprivate var trimmingLeadingSpaces: Substring { drop { $0 == " " } }
}
