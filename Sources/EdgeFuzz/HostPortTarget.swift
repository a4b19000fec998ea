// Fuzz target for the host:port parser the CLI's listener flags and the configuration's addresses go through.
import EdgeConfig
import EdgeTransportTCP

extension FuzzTargets {
    /// Any text: parsing never traps; an accepted address is the input with at most the port's leading zeros dropped
    /// (so no byte is skipped, trimmed or reinterpreted), its host is printable ASCII with a colon only in brackets,
    /// its canonical form reparses to itself, and where the TCP transport's `TCPDestination` also accepts the text it
    /// reads the same port.
    static func hostPort(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let text = String(decoding: input, as: UTF8.self)
        guard let address = HostPort.parse(text) else { return }
        try check(text.utf8.count <= HostPort.maxLength, "\(text.utf8.count)-byte text accepted")
        try check((0...65535).contains(address.port), "port \(address.port) from '\(text)'")
        try check(address.host.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }, "host '\(address.host)' from '\(text)'")
        let canonical = address.description
        try check(HostPort.parse(canonical) == address, "'\(canonical)' does not reparse to itself")
        let hostPart = canonical.dropLast(String(address.port).utf8.count)
        try check(text.utf8.starts(with: hostPart.utf8), "'\(text)' read as '\(canonical)'")
        let portText = text.utf8.dropFirst(hostPart.utf8.count)
        let significant = portText.drop { $0 == UInt8(ascii: "0") }
        try check(
            String(decoding: significant.isEmpty ? portText.suffix(1) : significant, as: UTF8.self) == String(address.port),
            "'\(text)' read as port \(address.port)")
        if let destination = try? TCPDestination(parsing: text) {
            try check(Int(destination.port) == address.port, "'\(text)': TCPDestination port \(destination.port)")
        }
    }
}
