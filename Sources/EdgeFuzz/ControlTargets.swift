// Fuzz targets for the control-socket protocol (docs/control-socket.md): typed CBOR commands and responses.
import EdgeControl
import EdgeWire

extension FuzzTargets {
    /// A command that decodes re-encodes (sorted attributes, minimal heads) to an equal command, and that encoding
    /// is a fixed point no longer than the input; a decoded duration is at most a year.
    static func controlRequest(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let command = try? ControlCommand(decoding: input) else { return }
        switch command {
        case .createChannel(_, let timeout), .sendMessage(_, _, let timeout, _):
            try check(timeout.map { $0 <= .milliseconds(Int64(ControlLimits.maxDurationMilliseconds)) } ?? true, "duration over a year accepted")
        case .confirmPairing(_, _, let attributes):
            try check(attributes.count <= 64, "more than 64 attributes accepted")
        default:
            break
        }
        let encoded = command.encode()
        guard let again = try? ControlCommand(decoding: encoded) else {
            throw FuzzInvariantViolation(description: "re-encoded control command does not decode")
        }
        try check(again == command, "control command round trip changed the command")
        try check(again.encode() == encoded, "control command encoding is not a fixed point")
        try check(encoded.count <= input.count, "canonical command longer than the input it came from")
    }

    /// A response that decodes re-encodes to an equal response and a fixed point.
    static func controlResponse(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let response = try? ControlResponse(decoding: input) else { return }
        let encoded = response.encode()
        guard let again = try? ControlResponse(decoding: encoded) else {
            throw FuzzInvariantViolation(description: "re-encoded control response does not decode")
        }
        try check(again == response, "control response round trip changed the response")
        try check(again.encode() == encoded, "control response encoding is not a fixed point")
        try check(encoded.count <= input.count, "canonical response longer than the input it came from")
    }
}
