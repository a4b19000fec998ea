// The bytes of frames in progress that inbound connections hold, capped per host and per listener.
import EdgeSync
import NIOCore

/// Accounts for the bytes of unfinished inbound frames (what each connection's decoder holds for the frame it is
/// receiving) per listener and per host (``TCPHostKey``), and decides which connections to cut when a cap is passed:
/// the one holding the most in the group that is over, then the next, until the group is within its cap. A frame that
/// announces 16 MiB costs only what has arrived; this bounds what many stalled frames can hold together.
final class UnfinishedFrames: Sendable {
    struct Limits: Sendable, Equatable {
        var perListener: Int
        var perHost: Int?
    }

    private struct Entry {
        let listener: Int
        let host: TCPHostKey?
        let channel: any Channel
        var bytes = 0
        var cut = false
    }

    private struct State: ~Copyable {
        var entries: [ObjectIdentifier: Entry] = [:]
        var byListener: [Int: Int] = [:]
        var byHost: [TCPHostKey: Int] = [:]
    }

    let limits: Limits
    private let state = EdgeMutex(State())

    init(limits: Limits) { self.limits = limits }

    /// Starts accounting for an admitted inbound connection.
    func register(_ channel: any Channel, listener: Int, host: TCPHostKey?) {
        state.withLock { $0.entries[ObjectIdentifier(channel)] = Entry(listener: listener, host: host, channel: channel) }
    }

    /// Forgets a connection that has closed.
    func remove(_ channel: any Channel) {
        state.withLock { state in
            guard let entry = state.entries.removeValue(forKey: ObjectIdentifier(channel)) else { return }
            Self.adjust(&state, entry, by: -entry.bytes)
        }
    }

    /// Records that `channel` now holds `bytes` of an unfinished frame; returns the connections to cut (each once),
    /// with the bytes each held.
    func update(_ channel: any Channel, bytes: Int) -> [(channel: any Channel, bytes: Int)] {
        state.withLock { state -> [(channel: any Channel, bytes: Int)] in
            let id = ObjectIdentifier(channel)
            guard var entry = state.entries[id], !entry.cut else { return [] }
            Self.adjust(&state, entry, by: bytes - entry.bytes)
            entry.bytes = bytes
            state.entries[id] = entry
            var cuts: [(channel: any Channel, bytes: Int)] = []
            if let host = entry.host, let cap = limits.perHost {
                while state.byHost[host, default: 0] > cap, let victim = Self.biggest(state, where: { $0.host == host }) {
                    cuts.append(Self.cut(&state, victim))
                }
            }
            while state.byListener[entry.listener, default: 0] > limits.perListener,
                let victim = Self.biggest(state, where: { $0.listener == entry.listener })
            {
                cuts.append(Self.cut(&state, victim))
            }
            return cuts
        }
    }

    /// Bytes held per listener (for tests and status).
    func held(listener: Int) -> Int { state.withLock { $0.byListener[listener, default: 0] } }

    private static func adjust(_ state: inout State, _ entry: Entry, by delta: Int) {
        state.byListener[entry.listener, default: 0] += delta
        if let host = entry.host {
            state.byHost[host, default: 0] += delta
            if state.byHost[host] == 0 { state.byHost[host] = nil }
        }
    }

    private static func biggest(_ state: borrowing State, where matches: (Entry) -> Bool) -> ObjectIdentifier? {
        var best: (ObjectIdentifier, Int)?
        for (id, entry) in state.entries where !entry.cut && entry.bytes > 0 && matches(entry) {
            if best == nil || entry.bytes > best!.1 { best = (id, entry.bytes) }
        }
        return best?.0
    }

    private static func cut(_ state: inout State, _ id: ObjectIdentifier) -> (channel: any Channel, bytes: Int) {
        var entry = state.entries[id]!
        let held = entry.bytes
        adjust(&state, entry, by: -held)
        entry.bytes = 0
        entry.cut = true
        state.entries[id] = entry
        return (entry.channel, held)
    }
}
