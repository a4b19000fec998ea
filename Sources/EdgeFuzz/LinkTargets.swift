// Fuzz targets for the device links and the agent's configuration: the serial framing byte stream
// (docs/serial-framing.md), BLE SDU reassembly (docs/ble.md) and the YAML configuration (docs/configuration.md).
import EdgeConfig
import EdgeTransportBLE
import EdgeTransportSerial

extension FuzzTargets {
    /// The input is a serial byte stream fed in chunks whose sizes come from the input itself. Invariants: the
    /// decoder never buffers more than its limit; every frame it yields re-encodes to bytes that decode to the same
    /// frame; the same stream fed in one piece yields the same events (chunking never changes what is decoded);
    /// a valid frame after the garbage is always recovered (resynchronisation).
    static func serialFrames(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        var chunked = SerialFrameDecoder(maxFrameSize: 1024)
        var events: [SerialFrameDecoder.Event] = []
        var index = 0
        var step = 1
        while index < input.count {
            let end = min(input.count, index + step)
            events += chunked.feed(input[index..<end])
            try check(chunked.bufferedByteCount <= chunked.maxEncodedLength, "decoder buffered beyond its limit")
            step = Int(input[index] % 17) + 1
            index = end
        }
        var whole = SerialFrameDecoder(maxFrameSize: 1024)
        try check(whole.feed(input) == events, "chunking changed the decoded events")
        for case .frame(let frame) in events {
            var again = SerialFrameDecoder(maxFrameSize: 1024)
            let decoded = again.feed(SerialFrameEncoder.encode(frame, leadingDelimiter: true))
            try check(decoded == [.frame(frame)], "a decoded frame does not survive re-encoding")
        }
        let probe = SerialFrame.data([0x01, 0x02, 0x03])
        _ = chunked.feed([SerialFraming.delimiter])  // end whatever was in progress (a noisy line's next delimiter)
        try check(
            chunked.feed(SerialFrameEncoder.encode(probe, leadingDelimiter: true)).last == .frame(probe),
            "a valid frame after the fuzz input was not recovered")
    }

    /// The input is a sequence of SDUs (`length byte ‖ bytes`) for one reassembler with a 4 KiB message limit.
    /// Invariants: never more than the limit buffered; every completed message is within the limit; once an SDU is
    /// refused the link is closed in the transport, so the harness stops there; fragmenting a completed message
    /// again and reassembling it gives it back.
    static func bleSDUs(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        let limit = 4096
        var reassembler = BLEReassembler(maxMessageSize: limit)
        var index = 0
        while index < input.count {
            let length = Int(input[index])
            index += 1
            let end = min(input.count, index + length)
            let output: BLEReassembler.Output
            do {
                output = try reassembler.push(input[index..<end])
            } catch {
                return
            }
            index = end
            try check(reassembler.bufferedBytes <= limit, "reassembler buffered beyond the message limit")
            guard case .message(let message) = output else { continue }
            try check(message.count <= limit, "reassembled a message over the limit")
            guard let sdus = try? BLEFraming.fragment(message, maxSDUSize: 23, maxMessageSize: limit) else {
                throw FuzzInvariantViolation(description: "a reassembled message cannot be fragmented again")
            }
            var fresh = BLEReassembler(maxMessageSize: limit)
            var result: [UInt8]?
            for sdu in sdus {
                if case .message(let m) = try? fresh.push(sdu[...]) { result = m }
            }
            try check(result == message, "fragment → reassemble does not round-trip")
        }
    }

    /// The input as a configuration file: parsing never crashes; a rejected file says where (line ≥ 0 within the
    /// file); an accepted file is deterministic (parsing twice gives the same configuration).
    static func agentConfig(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard input.count <= YAML.maxBytes, let text = String(validating: input, as: UTF8.self) else { return }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
        let parsed: Result<AgentConfig, ConfigError>
        do throws(ConfigError) {
            parsed = .success(try AgentConfig.parse(text, file: "fuzz.yaml"))
        } catch {
            parsed = .failure(error)
        }
        switch parsed {
        case .success(let config):
            try check((try? AgentConfig.parse(text, file: "fuzz.yaml")) == config, "parsing is not deterministic")
            try check(config.serialPorts.allSatisfy { $0.line >= 1 && $0.line <= lines }, "device link line outside the file")
        case .failure(let error):
            try check(error.line >= 0 && error.line <= lines + 1, "error line \(error.line) outside a \(lines)-line file")
            try check(error.file == "fuzz.yaml", "error names another file")
        }
    }
}
