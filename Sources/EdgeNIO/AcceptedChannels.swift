// EdgeNIO: swift-nio helpers shared by the transports and the control socket.
import EdgeSync
import NIOCore

/// Keeps every child channel a listener accepted until its accept loop takes it, so that none is ever dropped with
/// its outbound writer unfinished.
///
/// `NIOAsyncChannel(wrappingChannelSynchronously:)` traps ("Deinited NIOAsyncWriter without calling finish()") when
/// the wrapper is released before `executeThenClose` ran. A listening channel that closes, or whose loop stops, while
/// accepted children are buffered between NIO and the loop, or still being activated, drops them (swift-nio issues
/// 2637 and 2813): a connection arriving while a node shuts down could crash it. Wrap children with ``wrap(_:)`` in
/// the child initializer, ``claim(_:)`` each one the loop receives, and call ``closeUnclaimed()`` once the loop has
/// ended: the ones it never saw are finished and closed instead of trapping.
public final class AcceptedChannels<Inbound: Sendable, Outbound: Sendable>: Sendable {
    private struct State {
        var pending: [ObjectIdentifier: NIOAsyncChannel<Inbound, Outbound>] = [:]
        /// The accept loop has ended: a child wrapped from now on (its initializer ran on its own event loop while the
        /// listener closed) is closed at once.
        var loopEnded = false
    }

    private let state = EdgeMutex(State())

    public init() {}

    /// Wraps `child` (on its event loop, in the child channel initializer) and holds the wrapper until claimed.
    public func wrap(
        _ child: any Channel, configuration: NIOAsyncChannel<Inbound, Outbound>.Configuration = .init()
    ) throws -> NIOAsyncChannel<Inbound, Outbound> {
        let wrapped = try NIOAsyncChannel<Inbound, Outbound>(
            wrappingChannelSynchronously: child, configuration: configuration)
        let late = state.withLock { state in
            state.pending[ObjectIdentifier(child)] = wrapped
            return state.loopEnded
        }
        if late { Task { await self.closeUnclaimed() } }
        return wrapped
    }

    /// The accept loop received `channel`: from now on it is the loop's to `executeThenClose`.
    public func claim(_ channel: NIOAsyncChannel<Inbound, Outbound>) {
        _ = state.withLock { $0.pending.removeValue(forKey: ObjectIdentifier(channel.channel)) }
    }

    /// How many accepted channels no loop has taken yet.
    public var unclaimedCount: Int { state.withLock { $0.pending.count } }

    /// Closes every accepted channel no loop took, through `executeThenClose` (which finishes its writer), and any
    /// accepted later. Call when the accept loop has ended.
    public func closeUnclaimed() async {
        let unclaimed = state.withLock { state in
            state.loopEnded = true
            defer { state.pending.removeAll() }
            return Array(state.pending.values)
        }
        for channel in unclaimed {
            try? await channel.executeThenClose { _, _ in }
        }
    }
}
