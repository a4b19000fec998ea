// EdgeConfig: the agent's configuration — a small YAML subset parser with line numbers, and the config model.
//
// Why not Yams: it imports Foundation, which would add tens of MB to the agent. The configuration needs only the
// block subset of YAML below; anything else is rejected with the line where it appears.

/// A parsed YAML value with the line it started on (1-based).
public indirect enum YAMLNode: Equatable, Sendable {
    case scalar(String, line: Int)
    case sequence([YAMLNode], line: Int)
    case mapping([(key: String, value: YAMLNode, line: Int)], line: Int)

    public static func == (a: YAMLNode, b: YAMLNode) -> Bool {
        switch (a, b) {
        case (.scalar(let x, let l1), .scalar(let y, let l2)): return x == y && l1 == l2
        case (.sequence(let x, let l1), .sequence(let y, let l2)): return x == y && l1 == l2
        case (.mapping(let x, let l1), .mapping(let y, let l2)):
            return l1 == l2 && x.count == y.count
                && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value && $0.line == $1.line }
        default: return false
        }
    }

    public var line: Int {
        switch self {
        case .scalar(_, let l), .sequence(_, let l), .mapping(_, let l): return l
        }
    }
}

/// A YAML syntax error with its line.
public struct YAMLError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// Parses the block subset of YAML 1.2 that configuration files use:
///
/// - block mappings (`key: value`, `key:` followed by a more-indented block) and block sequences (`- item`,
///   including `- key: value` items continued on more-indented lines);
/// - plain, 'single-quoted' and "double-quoted" scalars (with `\\ \" \n \t \uXXXX` escapes), and flow sequences of
///   scalars (`[a, "b", c]`); comments; one document (an optional leading `---`).
///
/// Rejected with a clear error: tabs in indentation, anchors/aliases/tags, block scalars (`|`, `>`), flow mappings,
/// multi-document streams, duplicate keys, inconsistent indentation.
///
/// ### Invariants
/// - Bounded: at most ``maxBytes`` of input and ``maxDepth`` levels of nesting; never traps on any input.
public enum YAML {
    public static let maxBytes = 1 << 20
    public static let maxDepth = 32

    struct Line {
        var number: Int
        var indent: Int
        var text: Substring  // without indentation and comment, trailing spaces trimmed
    }

    public static func parse(_ source: String) throws(YAMLError) -> YAMLNode {
        guard source.utf8.count <= maxBytes else { throw YAMLError(line: 1, message: "file larger than \(maxBytes) bytes") }
        var lines: [Line] = []
        var number = 0
        var sawDocument = false
        // A UTF-8 byte-order mark (Windows editors) is not content. CRLF line ends are line ends: Swift sees "\r\n" as
        // one Character, so splitting on "\n" alone would leave a CRLF file as one long line.
        let text = source.hasPrefix("\u{FEFF}") ? source.dropFirst() : source[...]
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            var line = raw
            if line.last == "\r" { line = line.dropLast() }
            var indent = 0
            var index = line.startIndex
            while index < line.endIndex, line[index] == " " {
                indent += 1
                index = line.index(after: index)
            }
            if index < line.endIndex, line[index] == "\t" {
                throw YAMLError(line: number, message: "tab in indentation (use spaces)")
            }
            let content = stripComment(line[index...])
            if content.isEmpty { continue }
            if indent == 0 && (content == "---" || content.hasPrefix("--- ")) {
                if sawDocument || !lines.isEmpty { throw YAMLError(line: number, message: "only one YAML document is supported") }
                sawDocument = true
                continue
            }
            if indent == 0 && content == "..." { break }
            lines.append(Line(number: number, indent: indent, text: content))
        }
        guard !lines.isEmpty else { return .mapping([], line: 1) }
        var position = 0
        let node = try parseBlock(&lines, &position, indent: lines[0].indent, depth: 0)
        if position < lines.count {
            throw YAMLError(
                line: lines[position].number,
                message: "unexpected content (expected '- ' or 'key:' at the indentation of the lines above)")
        }
        return node
    }

    /// Removes a `#` comment (outside quotes) and trailing spaces.
    static func stripComment(_ text: Substring) -> Substring {
        var inSingle = false
        var inDouble = false
        var previous: Character = " "
        var escaped = false
        for index in text.indices {
            let c = text[index]
            if inDouble {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inDouble = false }
            } else if inSingle {
                if c == "'" { inSingle = false }
            } else if c == "\"" {
                inDouble = true
            } else if c == "'" {
                inSingle = true
            } else if c == "#" && (previous == " " || index == text.startIndex) {
                return trimTrailing(text[..<index])
            }
            previous = c
        }
        return trimTrailing(text)
    }

    static func trimTrailing(_ text: Substring) -> Substring {
        var end = text.endIndex
        while end > text.startIndex, text[text.index(before: end)] == " " { end = text.index(before: end) }
        return text[..<end]
    }

    static func parseBlock(_ lines: inout [Line], _ position: inout Int, indent: Int, depth: Int) throws(YAMLError) -> YAMLNode {
        guard depth < maxDepth else { throw YAMLError(line: lines[position].number, message: "nesting deeper than \(maxDepth)") }
        let first = lines[position]
        if first.text == "-" || first.text.hasPrefix("- ") {
            return try parseSequence(&lines, &position, indent: indent, depth: depth)
        }
        return try parseMapping(&lines, &position, indent: indent, depth: depth)
    }

    static func parseSequence(_ lines: inout [Line], _ position: inout Int, indent: Int, depth: Int) throws(YAMLError) -> YAMLNode {
        let startLine = lines[position].number
        var items: [YAMLNode] = []
        while position < lines.count, lines[position].indent == indent {
            let line = lines[position]
            // A sequence written at its key's indentation ends at the next key.
            guard line.text == "-" || line.text.hasPrefix("- ") else { break }
            let rest = line.text.dropFirst(1).drop { $0 == " " }
            if rest.isEmpty {
                position += 1
                guard position < lines.count, lines[position].indent > indent else {
                    items.append(.scalar("", line: line.number))
                    continue
                }
                items.append(try parseBlock(&lines, &position, indent: lines[position].indent, depth: depth + 1))
            } else if isMappingEntry(rest) {
                // `- key: value` starts a mapping whose other keys are indented to align with `key`.
                let itemIndent = indent + (line.text.count - rest.count)
                lines[position] = Line(number: line.number, indent: itemIndent, text: rest)
                items.append(try parseMapping(&lines, &position, indent: itemIndent, depth: depth + 1))
            } else {
                items.append(try parseScalarOrFlow(rest, line: line.number))
                position += 1
            }
        }
        if position < lines.count, lines[position].indent > indent {
            throw YAMLError(line: lines[position].number, message: "unexpected indentation")
        }
        return .sequence(items, line: startLine)
    }

    static func parseMapping(_ lines: inout [Line], _ position: inout Int, indent: Int, depth: Int) throws(YAMLError) -> YAMLNode {
        let startLine = lines[position].number
        var entries: [(key: String, value: YAMLNode, line: Int)] = []
        while position < lines.count, lines[position].indent == indent {
            let line = lines[position]
            guard let (key, value) = try splitEntry(line.text, line: line.number) else {
                throw YAMLError(line: line.number, message: "expected 'key: value'")
            }
            if entries.contains(where: { $0.key == key }) {
                throw YAMLError(line: line.number, message: "duplicate key '\(key)'")
            }
            position += 1
            if value.isEmpty {
                if position < lines.count, lines[position].indent > indent {
                    entries.append((key, try parseBlock(&lines, &position, indent: lines[position].indent, depth: depth + 1), line.number))
                } else if position < lines.count, lines[position].indent == indent,
                    lines[position].text == "-" || lines[position].text.hasPrefix("- ")
                {
                    // A sequence may sit at the same indentation as its key (common YAML style).
                    entries.append((key, try parseSequence(&lines, &position, indent: indent, depth: depth + 1), line.number))
                } else {
                    entries.append((key, .scalar("", line: line.number), line.number))
                }
            } else {
                entries.append((key, try parseScalarOrFlow(value, line: line.number), line.number))
            }
        }
        if position < lines.count, lines[position].indent > indent {
            throw YAMLError(line: lines[position].number, message: "unexpected indentation")
        }
        return .mapping(entries, line: startLine)
    }

    static func isMappingEntry(_ text: Substring) -> Bool {
        (try? splitEntry(text, line: 0)) != nil
    }

    /// Splits `key: value` (the key may be quoted). Returns nil if the text is not a mapping entry.
    static func splitEntry(_ text: Substring, line: Int) throws(YAMLError) -> (String, Substring)? {
        var key: String
        var rest: Substring
        if let quote = text.first, quote == "\"" || quote == "'" {
            guard let (parsed, after) = try readQuoted(text, line: line) else { return nil }
            key = parsed
            rest = after
            guard rest.first == ":" else { return nil }
            rest = rest.dropFirst()
        } else {
            var colon: Substring.Index?
            var index = text.startIndex
            while index < text.endIndex {
                if text[index] == ":" {
                    let next = text.index(after: index)
                    if next == text.endIndex || text[next] == " " {
                        colon = index
                        break
                    }
                }
                index = text.index(after: index)
            }
            guard let colon else { return nil }
            key = String(text[..<colon])
            rest = text[text.index(after: colon)...]
            guard !key.isEmpty, !key.hasPrefix("- "), !key.contains("\"") else { return nil }
            if key.hasPrefix("&") || key.hasPrefix("*") || key.hasPrefix("!") {
                throw YAMLError(line: line, message: "anchors, aliases and tags are not supported")
            }
        }
        guard rest.isEmpty || rest.first == " " else { return nil }
        return (key, rest.drop { $0 == " " })
    }

    static func parseScalarOrFlow(_ text: Substring, line: Int) throws(YAMLError) -> YAMLNode {
        guard let first = text.first else { return .scalar("", line: line) }
        switch first {
        case "[":
            guard text.last == "]" else { throw YAMLError(line: line, message: "unterminated flow sequence") }
            var items: [YAMLNode] = []
            var inner = text.dropFirst().dropLast().drop { $0 == " " }
            while !inner.isEmpty {
                let item: String
                if let q = inner.first, q == "\"" || q == "'" {
                    guard let (parsed, after) = try readQuoted(inner, line: line) else {
                        throw YAMLError(line: line, message: "unterminated quoted string")
                    }
                    item = parsed
                    inner = after.drop { $0 == " " }
                } else {
                    let end = inner.firstIndex(of: ",") ?? inner.endIndex
                    item = String(trimTrailing(inner[..<end]))
                    if item.contains("[") || item.contains("{") {
                        throw YAMLError(line: line, message: "nested flow collections are not supported")
                    }
                    inner = inner[end...]
                }
                items.append(.scalar(item, line: line))
                if inner.first == "," {
                    inner = inner.dropFirst().drop { $0 == " " }
                } else if !inner.isEmpty {
                    throw YAMLError(line: line, message: "expected ',' in flow sequence")
                }
            }
            return .sequence(items, line: line)
        case "{":
            throw YAMLError(line: line, message: "flow mappings ({…}) are not supported; use an indented block")
        case "|", ">":
            throw YAMLError(line: line, message: "block scalars (| and >) are not supported; use a quoted string")
        case "&", "*", "!":
            throw YAMLError(line: line, message: "anchors, aliases and tags are not supported")
        case "\"", "'":
            guard let (value, after) = try readQuoted(text, line: line) else {
                throw YAMLError(line: line, message: "unterminated quoted string")
            }
            guard after.allSatisfy({ $0 == " " }) else {
                throw YAMLError(line: line, message: "unexpected text after a quoted string")
            }
            return .scalar(value, line: line)
        default:
            return .scalar(String(text), line: line)
        }
    }

    /// Reads a quoted string at the start of `text`; returns its value and what follows.
    static func readQuoted(_ text: Substring, line: Int) throws(YAMLError) -> (String, Substring)? {
        guard let quote = text.first else { return nil }
        var out = ""
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let c = text[index]
            if quote == "'" {
                if c == "'" {
                    let next = text.index(after: index)
                    if next < text.endIndex, text[next] == "'" {
                        out.append("'")
                        index = text.index(after: next)
                        continue
                    }
                    return (out, text[next...])
                }
                out.append(c)
            } else {
                if c == "\"" { return (out, text[text.index(after: index)...]) }
                if c == "\\" {
                    index = text.index(after: index)
                    guard index < text.endIndex else { break }
                    switch text[index] {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "\\": out.append("\\")
                    case "\"": out.append("\"")
                    case "/": out.append("/")
                    case "0": out.append("\0")
                    case "u":
                        let start = text.index(after: index)
                        guard let end = text.index(start, offsetBy: 4, limitedBy: text.endIndex),
                            let value = UInt32(text[start..<end], radix: 16), let scalar = Unicode.Scalar(value)
                        else { throw YAMLError(line: line, message: "bad \\u escape") }
                        out.unicodeScalars.append(scalar)
                        index = text.index(before: end)
                    default:
                        throw YAMLError(line: line, message: "unknown escape \\\(text[index])")
                    }
                } else {
                    out.append(c)
                }
            }
            index = text.index(after: index)
        }
        return nil
    }
}
