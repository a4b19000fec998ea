// Ockam multiaddrs (`/ip4/127.0.0.1/tcp/4000/service/echo`): parsing, printing, binary form, route mapping.
import EdgeWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One `/proto/value` component of a multiaddr (`ockam_multiaddr`, spec §8.4).
public enum MultiaddrComponent: Hashable, Sendable, CustomStringConvertible {
    case ip4([UInt8])  // 4 bytes
    case ip6([UInt8])  // 16 bytes
    case tcp(UInt16)
    case dnsaddr(String)
    case service(String)
    case node(String)
    case project(String)
    case space(String)
    case secure(String)
    case worker(String)
    /// ockam-edge extension: the serial link configured under this name (route hop `64#<name>`).
    case serial(String)
    /// ockam-edge extension: a BLE device address, `AA:BB:CC:DD:EE:FF` with an optional `-random`/`-public` suffix
    /// (a `/` cannot appear in a value); must be followed by ``psm(_:)``. Route hop `4#<addr>[/random],psm=<psm>`.
    case ble(String)
    /// ockam-edge extension: the L2CAP PSM after `/ble/…` (`0x81` or `129`).
    case psm(String)

    /// Protocol names as users type them.
    public static let protocolNames = [
        "ip4", "ip6", "tcp", "dnsaddr", "service", "node", "project", "space", "secure", "worker", "serial", "ble", "psm",
    ]

    public var protocolName: String {
        switch self {
        case .ip4: return "ip4"
        case .ip6: return "ip6"
        case .tcp: return "tcp"
        case .dnsaddr: return "dnsaddr"
        case .service: return "service"
        case .node: return "node"
        case .project: return "project"
        case .space: return "space"
        case .secure: return "secure"
        case .worker: return "worker"
        case .serial: return "serial"
        case .ble: return "ble"
        case .psm: return "psm"
        }
    }

    /// The multiformats code used in the binary form.
    public var code: UInt64 {
        switch self {
        case .ip4: return 4
        case .ip6: return 41
        case .tcp: return 6
        case .dnsaddr: return 56
        case .service: return 62526
        case .node: return 72526
        case .project: return 82526
        case .space: return 92526
        case .secure: return 99526
        case .worker: return 102526
        case .serial: return 0x30_0040  // multiformats private-use range: an ockam-edge extension
        case .ble: return 0x30_0041
        case .psm: return 0x30_0042
        }
    }

    public var valueText: String {
        switch self {
        case .ip4(let b): return IPText.format(b, family: AF_INET) ?? "?"
        case .ip6(let b): return IPText.format(b, family: AF_INET6) ?? "?"
        case .tcp(let port): return String(port)
        case .dnsaddr(let s), .service(let s), .node(let s), .project(let s), .space(let s), .secure(let s),
            .worker(let s), .serial(let s), .ble(let s), .psm(let s):
            return s
        }
    }

    public var description: String { "/\(protocolName)/\(valueText)" }
}

/// A parse or conversion error that points at the offending part of the input.
public struct MultiaddrError: Error, Hashable, Sendable, CustomStringConvertible {
    public var input: String
    /// Character offset and length of the bad part within `input` (for the caret line).
    public var offset: Int
    public var length: Int
    public var reason: String

    public var description: String {
        let caret = String(repeating: " ", count: offset) + String(repeating: "^", count: max(1, length))
        return "invalid multiaddr: \(reason)\n  \(input)\n  \(caret)"
    }
}

/// A sequence of multiaddr components.
public struct Multiaddr: Hashable, Sendable, CustomStringConvertible {
    public var components: [MultiaddrComponent]

    public init(_ components: [MultiaddrComponent]) { self.components = components }

    public var description: String { components.map(\.description).joined() }

    /// Longest text or binary multiaddr accepted.
    public static let maxLength = 4096

    // MARK: Text

    /// Parses `/proto/value/proto/value…`.
    public init(parsing text: String) throws(MultiaddrError) {
        func fail(_ offset: Int, _ length: Int, _ reason: String) -> MultiaddrError {
            MultiaddrError(input: text, offset: offset, length: length, reason: reason)
        }
        guard text.utf8.count <= Self.maxLength else {
            throw fail(0, 1, "longer than \(Self.maxLength) bytes")
        }
        guard text.hasPrefix("/") else { throw fail(0, 1, "must start with '/'") }
        let characters = Array(text)
        // Split into segments with their character offsets.
        var segments: [(text: String, offset: Int)] = []
        var current = ""
        var start = 1
        for (i, c) in characters.enumerated().dropFirst() {
            if c == "/" {
                segments.append((current, start))
                current = ""
                start = i + 1
            } else {
                current.append(c)
            }
        }
        segments.append((current, start))
        if segments.last?.text.isEmpty == true, segments.count > 1 { segments.removeLast() }  // trailing '/'

        var result: [MultiaddrComponent] = []
        var index = 0
        while index < segments.count {
            let (name, nameOffset) = segments[index]
            guard !name.isEmpty else { throw fail(nameOffset, 1, "empty protocol name") }
            guard MultiaddrComponent.protocolNames.contains(name) else {
                throw fail(
                    nameOffset, name.count,
                    "unknown protocol \"\(name)\" (expected one of \(MultiaddrComponent.protocolNames.joined(separator: ", ")))"
                )
            }
            guard index + 1 < segments.count, !segments[index + 1].text.isEmpty else {
                throw fail(nameOffset, name.count, "/\(name) needs a value")
            }
            let (value, valueOffset) = segments[index + 1]
            let bad = { (reason: String) in fail(valueOffset, value.count, reason) }
            switch name {
            case "ip4":
                guard let bytes = IPText.parse(value, family: AF_INET) else { throw bad("bad IPv4 address \"\(value)\"") }
                result.append(.ip4(bytes))
            case "ip6":
                guard let bytes = IPText.parse(value, family: AF_INET6) else {
                    throw bad("bad IPv6 address \"\(value)\"")
                }
                result.append(.ip6(bytes))
            case "tcp":
                guard let port = UInt16(value), port != 0 else { throw bad("bad TCP port \"\(value)\" (1-65535)") }
                result.append(.tcp(port))
            case "ble":
                guard Self.isBLEAddress(value) else {
                    throw bad("bad BLE address \"\(value)\" (AA:BB:CC:DD:EE:FF, optionally -random or -public)")
                }
                result.append(.ble(value))
            case "psm":
                guard Self.psmValue(value) != nil else { throw bad("bad L2CAP PSM \"\(value)\" (0x0001-0xffff, e.g. 0x81)") }
                result.append(.psm(value))
            default:
                guard value.utf8.count <= 255 else { throw bad("value longer than 255 bytes") }
                guard value.allSatisfy({ !$0.isWhitespace && !$0.isNewline }) else {
                    throw bad("value contains whitespace")
                }
                switch name {
                case "dnsaddr": result.append(.dnsaddr(value))
                case "service": result.append(.service(value))
                case "node": result.append(.node(value))
                case "project": result.append(.project(value))
                case "space": result.append(.space(value))
                case "secure": result.append(.secure(value))
                case "serial": result.append(.serial(value))
                default: result.append(.worker(value))
                }
            }
            index += 2
        }
        guard !result.isEmpty else { throw fail(0, 1, "empty multiaddr") }
        components = result
        try validateTransportPairs(text: text, segments: segments)
    }

    /// `tcp` must follow an address; `ip4`/`ip6`/`dnsaddr` must be followed by `tcp`.
    private func validateTransportPairs(text: String, segments: [(text: String, offset: Int)]) throws(MultiaddrError) {
        for (i, component) in components.enumerated() {
            let segment = segments[i * 2]
            switch component {
            case .ip4, .ip6, .dnsaddr:
                if i + 1 >= components.count || components[i + 1].protocolName != "tcp" {
                    throw MultiaddrError(
                        input: text, offset: segment.offset, length: segment.text.count,
                        reason: "/\(component.protocolName) must be followed by /tcp/<port>")
                }
            case .tcp:
                let previous = i > 0 ? components[i - 1].protocolName : ""
                if !["ip4", "ip6", "dnsaddr"].contains(previous) {
                    throw MultiaddrError(
                        input: text, offset: segment.offset, length: segment.text.count,
                        reason: "/tcp must follow /ip4, /ip6 or /dnsaddr")
                }
            case .ble:
                if i + 1 >= components.count || components[i + 1].protocolName != "psm" {
                    throw MultiaddrError(
                        input: text, offset: segment.offset, length: segment.text.count,
                        reason: "/ble must be followed by /psm/<psm>")
                }
            case .psm:
                if i == 0 || components[i - 1].protocolName != "ble" {
                    throw MultiaddrError(
                        input: text, offset: segment.offset, length: segment.text.count, reason: "/psm must follow /ble")
                }
            default: break
            }
        }
    }

    // MARK: Binary

    /// Binary form: for each component a ULEB128 code, then its value.
    public func encode() -> [UInt8] {
        var out: [UInt8] = []
        for component in components {
            BARE.writeVarint(component.code, into: &out)
            switch component {
            case .ip4(let b), .ip6(let b): out.append(contentsOf: b)
            case .tcp(let port): out.append(contentsOf: [UInt8(port >> 8), UInt8(port & 0xff)])
            case .dnsaddr(let s), .service(let s), .node(let s), .project(let s), .space(let s), .secure(let s),
                .worker(let s), .serial(let s), .ble(let s), .psm(let s):
                BARE.writeString(s, into: &out)
            }
        }
        return out
    }

    public init(decoding bytes: ArraySlice<UInt8>) throws(WireError) {
        guard bytes.count <= Self.maxLength else { throw .limitExceeded(what: "multiaddr", limit: Self.maxLength) }
        var position = bytes.startIndex
        var result: [MultiaddrComponent] = []
        while position < bytes.endIndex {
            let code = try BARE.readVarint(bytes, at: &position)
            func fixed(_ n: Int) throws(WireError) -> [UInt8] {
                guard bytes.endIndex - position >= n else { throw .truncated }
                defer { position += n }
                return Array(bytes[position..<position + n])
            }
            switch code {
            case 4: result.append(.ip4(try fixed(4)))
            case 41: result.append(.ip6(try fixed(16)))
            case 6:
                let b = try fixed(2)
                result.append(.tcp(UInt16(b[0]) << 8 | UInt16(b[1])))
            default:
                let s = try BARE.readString(bytes, at: &position, limit: 255)
                switch code {
                case 56: result.append(.dnsaddr(s))
                case 62526: result.append(.service(s))
                case 72526: result.append(.node(s))
                case 82526: result.append(.project(s))
                case 92526: result.append(.space(s))
                case 99526: result.append(.secure(s))
                case 102526: result.append(.worker(s))
                case 0x30_0040: result.append(.serial(s))
                case 0x30_0041: result.append(.ble(s))
                case 0x30_0042: result.append(.psm(s))
                default: throw .unsupported("multiaddr protocol code \(code)")
                }
            }
        }
        guard !result.isEmpty else { throw .truncated }
        // The binary form must describe what the text parser accepts (ports 1-65535, /tcp after an address, …).
        let candidate = Multiaddr(result)
        guard (try? Multiaddr(parsing: candidate.description)) == candidate else {
            throw .unsupported("multiaddr that has no valid text form")
        }
        components = result
    }

    // MARK: Route mapping

    /// A step of a route derived from a multiaddr: a plain address, or "open a secure channel to this
    /// listener over the route so far and continue through it".
    public enum RouteSegment: Hashable, Sendable {
        case address(Address)
        case secureChannel(listener: String)
    }

    /// Maps the multiaddr onto route segments (Ockam's `multiaddr_to_route`).
    ///
    /// - Parameter resolveNode: maps `/node/<name>` to that node's TCP address (`host:port`); nil → error.
    public func routeSegments(resolveNode: (String) -> String? = { _ in nil }) throws(MultiaddrError) -> [RouteSegment] {
        let text = description
        func fail(_ index: Int, _ reason: String) -> MultiaddrError {
            let offset = components[..<index].reduce(0) { $0 + $1.description.count }
            return MultiaddrError(input: text, offset: offset, length: components[index].description.count, reason: reason)
        }
        var out: [RouteSegment] = []
        var i = 0
        while i < components.count {
            let component = components[i]
            switch component {
            case .ip4, .ip6, .dnsaddr:
                guard i + 1 < components.count, case .tcp(let port) = components[i + 1] else {
                    throw fail(i, "must be followed by /tcp/<port>")
                }
                let host: String
                if case .ip6 = component { host = "[\(component.valueText)]" } else { host = component.valueText }
                out.append(.address(.tcp("\(host):\(port)")))
                i += 2
                continue
            case .tcp:
                throw fail(i, "/tcp must follow /ip4, /ip6 or /dnsaddr")
            case .service(let name), .worker(let name):
                out.append(.address(.local(name)))
            case .node(let name):
                guard let hostPort = resolveNode(name) else {
                    throw fail(i, "unknown node \"\(name)\" (is it running? start it with `ockam-edge node run --name \(name)`)")
                }
                out.append(.address(.tcp(hostPort)))
            case .secure(let listener):
                out.append(.secureChannel(listener: listener))
            case .serial(let name):
                out.append(.address(Address(TransportType(64), name)))
            case .ble(let value):
                guard i + 1 < components.count, case .psm(let psm) = components[i + 1] else {
                    throw fail(i, "must be followed by /psm/<psm>")
                }
                // Hop form (docs/ble.md): `AA:BB:CC:DD:EE:FF[/random|/public],psm=0x81`.
                var address = value
                for type in ["random", "public"] where value.hasSuffix("-" + type) {
                    address = String(value.dropLast(type.count + 1)) + "/" + type
                }
                out.append(.address(Address(TransportType(4), "\(address),psm=\(psm)")))
                i += 2
                continue
            case .psm:
                throw fail(i, "/psm must follow /ble")
            case .project, .space:
                throw fail(i, "/\(component.protocolName) needs Ockam Orchestrator, which ockam-edge does not use")
            }
            i += 1
        }
        return out
    }

    /// `AA:BB:CC:DD:EE:FF` (either case) with an optional `-random` or `-public` suffix.
    static func isBLEAddress(_ value: String) -> Bool {
        var address = Substring(value)
        for suffix in ["-random", "-public"] where address.hasSuffix(suffix) { address = address.dropLast(suffix.count) }
        let octets = address.split(separator: ":", omittingEmptySubsequences: false)
        return octets.count == 6 && octets.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
    }

    /// A PSM written in hex (`0x81`) or decimal (`129`), 1…0xFFFF.
    static func psmValue(_ value: String) -> UInt16? {
        let parsed = value.hasPrefix("0x") || value.hasPrefix("0X") ? UInt16(value.dropFirst(2), radix: 16) : UInt16(value)
        return parsed.flatMap { $0 == 0 ? nil : $0 }
    }

    /// Maps to a plain route; a `/secure/…` component is an error here (the caller must open channels).
    public func route(resolveNode: (String) -> String? = { _ in nil }) throws(MultiaddrError) -> Route {
        var route = Route()
        for segment in try routeSegments(resolveNode: resolveNode) {
            switch segment {
            case .address(let address): route.append(address)
            case .secureChannel:
                throw MultiaddrError(
                    input: description, offset: 0, length: description.count,
                    reason: "/secure/… needs a secure channel, which this command cannot open")
            }
        }
        return route
    }
}

/// inet_pton / inet_ntop wrappers (multiaddrs here; TCP destinations in the transport).
public enum IPText {
    public static func parse(_ text: String, family: Int32) -> [UInt8]? {
        // inet_pton reads a C string: an embedded NUL would silently cut the text short.
        guard !text.utf8.contains(0) else { return nil }
        let size = family == AF_INET ? 4 : 16
        var buffer = [UInt8](repeating: 0, count: size)
        let ok = buffer.withUnsafeMutableBytes { raw in inet_pton(family, text, raw.baseAddress) }
        return ok == 1 ? buffer : nil
    }

    public static func format(_ bytes: [UInt8], family: Int32) -> String? {
        guard bytes.count == (family == AF_INET ? 4 : 16) else { return nil }
        var out = [CChar](repeating: 0, count: 64)
        let result = bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { o in inet_ntop(family, raw.baseAddress, o.baseAddress, 64) }
        }
        guard result != nil else { return nil }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
