// Fuzz targets for the control-socket protocol (docs/control-socket.md): CBOR requests and responses.
import EdgeControl
import EdgeWire

extension FuzzTargets {
    /// A request that decodes re-encodes (sorted arguments, minimal heads) to an equal request, and that encoding
    /// is a fixed point; the decoded sizes respect the decoder's limits.
    static func controlRequest(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard let request = try? ControlRequest(decoding: input) else { return }
        try check(request.command.utf8.count <= 128, "command longer than 128 bytes accepted")
        try check(request.arguments.count <= 64, "more than 64 arguments accepted")
        let encoded = request.encode()
        guard let again = try? ControlRequest(decoding: encoded) else {
            throw FuzzInvariantViolation(description: "re-encoded control request does not decode")
        }
        try check(again == request, "control request round trip changed the request")
        try check(again.encode() == encoded, "control request encoding is not a fixed point")
        try check(encoded.count <= input.count, "canonical request longer than the input it came from")
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
