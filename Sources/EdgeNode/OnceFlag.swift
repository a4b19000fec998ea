// A flag one task sets and another reads: shared by the transports and timeouts of this package.
import Synchronization

/// Set once (setting it again changes nothing), read from any thread. Used where a callback must tell its caller
/// that it ran: NIO's channel initializer (after which NIO owns, and closes, the descriptors it was given) and an
/// expired ``withTimeout`` timer.
package final class OnceFlag: Sendable {
    private let value = Atomic<Bool>(false)
    package init() {}
    package func set() { value.store(true, ordering: .releasing) }
    package var isSet: Bool { value.load(ordering: .acquiring) }
}
