// Admission of half-open handshakes on one listener, fair between sources (finding F3 in docs/security.md).
import EdgeRouting

/// The half-open (responder) handshakes of one listener, by source.
///
/// A *source* is the first hop of message 1's return route: the transport connection it came in on (a TCP
/// connection's sender address, a serial or BLE link), or the local sender. Two limits:
/// - **per source** (`perSourceCap`): a source with that many handshakes in progress has its next message 1 refused
///   (it only hurts itself);
/// - **per listener** (`cap`, bounds memory): when every slot is taken, the *oldest* handshake of the *busiest* source
///   (the one holding the most slots; on a tie, the one whose oldest handshake is oldest) is evicted to admit the
///   newcomer, instead of refusing it. So a flood from one connection cannot lock other connections out; it mostly
///   evicts its own handshakes.
///
/// Pure: the caller stops the evicted handshake's worker.
struct HalfOpenHandshakes: Sendable {
    enum Admission: Sendable, Equatable {
        case admitted
        /// Admitted in place of these (evicted) handshakes' decryptors: one, or more after a reload lowered the cap.
        case admittedEvicting([Address])
        /// The source already has `perSourceCap` handshakes in progress.
        case refusedSourceFull
    }

    /// Limits (a listener restarted by a reload may change them; handshakes already admitted stay).
    var cap: Int
    var perSourceCap: Int
    /// Decryptor addresses of each source's handshakes, oldest first, with their admission order.
    private var bySource: [Address: [(decryptor: Address, order: UInt64)]] = [:]
    private var sourceOf: [Address: Address] = [:]
    private var nextOrder: UInt64 = 0

    init(cap: Int, perSourceCap: Int) {
        self.cap = max(1, cap)
        self.perSourceCap = max(1, perSourceCap)
    }

    var count: Int { sourceOf.count }
    func count(from source: Address) -> Int { bySource[source]?.count ?? 0 }

    mutating func admit(_ decryptor: Address, from source: Address) -> Admission {
        guard count(from: source) < perSourceCap else { return .refusedSourceFull }
        var evicted: [Address] = []
        while count >= cap, let busiest = busiestSource(), let oldest = bySource[busiest]?.first {
            release(oldest.decryptor)
            evicted.append(oldest.decryptor)
        }
        bySource[source, default: []].append((decryptor, nextOrder))
        sourceOf[decryptor] = source
        nextOrder += 1
        return evicted.isEmpty ? .admitted : .admittedEvicting(evicted)
    }

    /// Forgets a handshake (completed, failed, timed out or evicted); a no-op if it is not here.
    mutating func release(_ decryptor: Address) {
        guard let source = sourceOf.removeValue(forKey: decryptor) else { return }
        bySource[source]?.removeAll { $0.decryptor == decryptor }
        if bySource[source]?.isEmpty == true { bySource[source] = nil }
    }

    private func busiestSource() -> Address? {
        bySource.max { a, b in
            a.value.count != b.value.count ? a.value.count < b.value.count : a.value[0].order > b.value[0].order
        }?.key
    }
}
