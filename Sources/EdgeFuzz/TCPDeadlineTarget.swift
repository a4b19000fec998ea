// Fuzz target for the TCP read deadline (finding F2): OckamTCPReadDeadline against an independent per-byte model and
// the frame decoder, on fuzzer-chosen chunking and arrival times.
import EdgeTransportTCP
import NIOCore

extension FuzzTargets {
    /// The input is `frameTimeout byte ‖ rate byte ‖ (length byte ‖ delay byte ‖ length bytes of stream)*`.
    /// Limits: version timeout 5 s, frame timeout 1–8 s, minimum rate 1 … 255·64+1 bytes/s. Each record delivers
    /// its bytes as one read, `delay · 40 ms` after the previous one.
    ///
    /// A model computes, byte by byte, the deadline the connection must have after each read: the version byte's
    /// (5 s after connecting) until it arrives; none between frames; `t₀ + frameTimeout` while a frame's 4-byte
    /// prefix is incomplete (t₀ = arrival of its first byte); `t₀ + frameTimeout + length / rate` once the length
    /// is known. Invariants, after every read:
    /// - the deadline the machine leaves armed (last `arm`/`cancel` wins) equals the model's, whatever the chunking;
    /// - the frame decoder (1 MiB limit) has emitted exactly the frames the model has completed, and holds exactly the
    ///   bytes the machine reports as the unfinished frame's (`unfinishedBytes`, what the F14 caps account for);
    /// - a read arriving after the armed deadline never happens in the real handler (its timer closes the connection
    ///   first): the run stops there, and `timeoutError` must name what the model was waiting for.
    /// The run also stops where the decoder rejects the stream (wrong version, empty or oversize frame).
    static func tcpReadDeadline(_ input: [UInt8]) throws(FuzzInvariantViolation) {
        guard input.count >= 2 else { return }
        let limits = OckamTCPReadDeadline.Limits(
            versionTimeout: .seconds(5), frameTimeout: .seconds(Int64(1 + input[0] % 8)),
            frameMinimumRate: 1 + Int(input[1]) * 64)
        var machine = OckamTCPReadDeadline(limits: limits)
        var model = DeadlineModel(limits: limits, connected: .uptimeNanoseconds(1_000_000_000))
        var decoder = OckamTCPFrameDecoder(maxFrameSize: 1 << 20)
        var buffer = ByteBuffer()
        var decodedFrames = 0

        var now = model.connected
        var armed: NIODeadline? = nil
        apply(machine.start(now: now), to: &armed)
        try check(armed == model.deadline, "start: armed \(String(describing: armed)), model \(model.deadline!)")

        var index = 2
        while index + 2 <= input.count {
            let length = Int(input[index])
            now = now + .milliseconds(40 * Int64(input[index + 1]))
            index += 2
            let chunk = Array(input[index..<min(input.count, index + length)])
            index += chunk.count

            if let deadline = armed, now > deadline {
                // The handler's timer fired first and closed the connection with this error.
                try check(
                    machine.timeoutError == model.expectedTimeoutError,
                    "timer at \(deadline): machine reports \(machine.timeoutError), model expects \(model.expectedTimeoutError)")
                return
            }

            var view = ByteBuffer(bytes: chunk)
            apply(machine.received(view.readableBytesView, now: now), to: &armed)
            model.receive(chunk, at: now)

            buffer.writeBuffer(&view)
            while true {
                let frame: ByteBuffer?
                do { frame = try decoder.decode(buffer: &buffer) } catch { return }  // the connection closes
                guard frame != nil else { break }
                decodedFrames += 1
            }
            buffer.discardReadBytes()

            try check(
                armed == model.deadline,
                "after \(index) input bytes: armed \(String(describing: armed)), model \(String(describing: model.deadline))")
            try check(
                decodedFrames == model.completedFrames,
                "decoder emitted \(decodedFrames) frames, the model completed \(model.completedFrames)")
            // What the unfinished-frame caps account for is exactly what the decoder holds (F14).
            try check(
                machine.unfinishedBytes == buffer.readableBytes,
                "machine counts \(machine.unfinishedBytes) unfinished bytes, the decoder holds \(buffer.readableBytes)")
        }
    }

    private static func apply(_ change: OckamTCPReadDeadline.Change, to armed: inout NIODeadline?) {
        switch change {
        case .unchanged: break
        case .arm(let deadline): armed = deadline
        case .cancel: armed = nil
        }
    }
}

/// The deadline rules of ``OckamTCPReadDeadline``, restated byte by byte (no phases, no chunk arithmetic).
private struct DeadlineModel {
    let limits: OckamTCPReadDeadline.Limits
    let connected: NIODeadline
    private var versionSeen = false
    private var frameStart: NIODeadline? = nil  // arrival of the current frame's first byte
    private var prefix: [UInt8] = []
    private var bodyRemaining = 0
    private(set) var completedFrames = 0

    init(limits: OckamTCPReadDeadline.Limits, connected: NIODeadline) {
        self.limits = limits
        self.connected = connected
    }

    private var length: UInt32? {
        prefix.count == 4 ? prefix.reduce(0) { $0 << 8 | UInt32($1) } : nil
    }

    mutating func receive(_ bytes: [UInt8], at time: NIODeadline) {
        for byte in bytes {
            if !versionSeen {
                versionSeen = true
                continue
            }
            if frameStart == nil { frameStart = time }
            if prefix.count < 4 {
                prefix.append(byte)
                if let length {
                    bodyRemaining = Int(length)
                    if length == 0 { endFrame(counted: false) }
                }
                continue
            }
            bodyRemaining -= 1
            if bodyRemaining == 0 { endFrame(counted: true) }
        }
    }

    private mutating func endFrame(counted: Bool) {
        if counted { completedFrames += 1 }
        frameStart = nil
        prefix = []
    }

    /// The deadline the connection must have now.
    var deadline: NIODeadline? {
        guard versionSeen else { return connected + TimeAmount(limits.versionTimeout) }
        guard let frameStart else { return nil }
        guard let length else { return frameStart + TimeAmount(limits.frameTimeout) }
        return frameStart + TimeAmount(limits.allowance(forFrameOf: length))
    }

    /// What a connection closed by its deadline now reports.
    var expectedTimeoutError: TCPTransportError {
        guard versionSeen else { return .versionTimeout }
        guard frameStart != nil else { return .connectionClosed }
        guard let length else { return .frameTimeout(length: nil, allowed: limits.frameTimeout) }
        return .frameTimeout(length: length, allowed: limits.allowance(forFrameOf: length))
    }
}
