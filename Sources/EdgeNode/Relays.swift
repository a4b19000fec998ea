// Relays (spec §8.5): Ockam's static forwarding service on a reachable node, and the client that registers with it.
import EdgeSync
import EdgeRouting
import EdgeWire
import Logging

/// The hub side: `static_forwarding_service` creates `forward_to_<name>` relays that forward everything to the route
/// the registration came from, so a node behind NAT (which dialled out) becomes reachable.
///
/// Wire behaviour as Ockam: the request is a BARE string (the name, or `register` on `forwarding_service` for a
/// random one); the relay answers the requester with the BARE string `forward_to_<name>` from its own address, then
/// forwards every message it receives along the registration route minus its last hop (the requester's
/// registration worker), followed by the rest of the message's onward route.
public struct RelayService: Worker {
    public static let staticAddress = Address.local("static_forwarding_service")
    public static let randomAddress = Address.local("forwarding_service")
    public static let prefix = "forward_to_"

    /// Decides whether a registration may use `name` (e.g. from the requester's credential attribute `ockam-relay`).
    public typealias Authorization = @Sendable (LocalMessage, String) -> Bool
    let authorize: Authorization

    public init(authorize: @escaping Authorization = { _, _ in true }) { self.authorize = authorize }

    public func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        var name = try BARE.decodeString(message.payload, limit: 256)
        if name == "register" { name = Address.random().valueString }
        guard !name.isEmpty, name.utf8.count <= 200, !name.contains("#") else {
            context.logger.warning("relay registration with an invalid name refused")
            return
        }
        guard authorize(message, name) else {
            context.logger.warning("relay registration for '\(name)' not authorised")
            return
        }
        let relayAddress = Address.local(Self.prefix + name)
        // A node that reconnects registers again: the new route replaces the old one.
        await context.node.stopWorker(at: relayAddress)
        try context.node.startWorker(
            Relay(forwardRoute: message.returnRoute, name: relayAddress.valueString), at: relayAddress,
            options: WorkerOptions(reach: .links))
        context.logger.info("relay \(relayAddress) → \(message.returnRoute)")
    }
}

/// One `forward_to_<name>` relay.
final class Relay: Worker {
    private let route: EdgeMutex<Route>
    let name: String

    init(forwardRoute: Route, name: String) {
        route = EdgeMutex(forwardRoute)
        self.name = name
    }

    func initialize(context: WorkerContext) async throws {
        let registration = route.withLock { $0 }
        try await context.send(to: registration, payload: BARE.encodeString(name))
        // Keep the route to the registering node, without its registration worker.
        route.withLock { r in
            if r.count > 1 { r.addresses.removeLast() }
        }
    }

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        var forwarded = message
        forwarded.onwardRoute.popFront()
        forwarded.onwardRoute = route.withLock { $0 }.appending(forwarded.onwardRoute)
        try await context.forward(forwarded)
    }
}

/// The registering side: asks a hub for `forward_to_<name>` and reports the relay's route when it is confirmed.
public final class RemoteRelay: Worker {
    public struct Registration: Sendable, Hashable {
        /// The full route to the relay on the hub (use it with `/service/forward_to_<name>` from other nodes).
        public var relayRoute: Route
        public var relayName: String
    }

    let hubRoute: Route
    let name: String
    private struct State {
        var registration: Registration?
        var waiter: CheckedContinuation<Registration, any Error>?
        var timedOut = false
    }
    private let state = EdgeMutex(State())

    /// - Parameters:
    ///   - hubRoute: the route to the hub node (e.g. `[1#hub:4000]`, or a secure channel's encryptor).
    ///   - name: the relay name; `forward_to_<name>` is created on the hub.
    public init(hubRoute: Route, name: String) {
        self.hubRoute = hubRoute
        self.name = name
    }

    public var registration: Registration? { state.withLock { $0.registration } }

    public func initialize(context: WorkerContext) async throws {
        try await context.send(
            to: hubRoute.appending([RelayService.staticAddress]), payload: BARE.encodeString(name))
    }

    public func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        var local = message
        local.onwardRoute.popFront()
        if local.onwardRoute.isEmpty {
            // The hub's confirmation: payload = final relay name, return route ends at the relay.
            let confirmed = try BARE.decodeString(local.payload, limit: 256)
            guard confirmed.hasSuffix(name) else { throw NodeError.unknownAddress(.local(confirmed)) }
            let registration = Registration(relayRoute: local.returnRoute, relayName: confirmed)
            let waiter = state.withLock { s -> CheckedContinuation<Registration, any Error>? in
                s.registration = registration
                defer { s.waiter = nil }
                return s.waiter
            }
            context.logger.info("relay registered: \(registration.relayName) at \(registration.relayRoute)")
            waiter?.resume(returning: registration)
        } else {
            // Older hubs forward through the registering worker: pass messages on.
            try await context.forward(local)
        }
    }

    /// Waits for the hub's confirmation (bounded).
    public func waitForRegistration(timeout: Duration) async throws -> Registration {
        try await withThrowingTaskGroup(of: Registration.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    let ready = self.state.withLock { s -> Result<Registration, NodeError>? in
                        if let r = s.registration { return .success(r) }
                        if s.timedOut { return .failure(.timeout(timeout)) }
                        s.waiter = continuation
                        return nil
                    }
                    if let ready { continuation.resume(with: ready) }
                }
            }
            group.addTask {
                // Timed out or cancelled (e.g. a session stopping), the waiter is resumed either way: the group
                // cannot return while the other task still waits for a confirmation that may never come.
                let cancelled = (try? await Task.sleep(for: timeout)) == nil
                let error: any Error = cancelled ? CancellationError() : NodeError.timeout(timeout)
                let waiter = self.state.withLock { s -> CheckedContinuation<Registration, any Error>? in
                    s.timedOut = true
                    defer { s.waiter = nil }
                    return s.waiter
                }
                waiter?.resume(throwing: error)
                throw error
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}

extension Node {
    /// Registers `forward_to_<name>` on the hub reachable at `hubRoute` and waits for the confirmation.
    public func registerRelay(name: String, hubRoute: Route, timeout: Duration = .seconds(10)) async throws
        -> RemoteRelay.Registration
    {
        let relay = RemoteRelay(hubRoute: hubRoute, name: name)
        let address = Address.random()
        try startWorker(relay, at: address)
        do {
            return try await relay.waitForRegistration(timeout: timeout)
        } catch {
            await stopWorker(at: address)
            throw error
        }
    }

    /// Starts the relay service (`static_forwarding_service` and `forwarding_service`) on this node.
    public func startRelayService(authorize: @escaping RelayService.Authorization = { _, _ in true }) throws(NodeError) {
        try startWorker(
            RelayService(authorize: authorize), at: [RelayService.staticAddress, RelayService.randomAddress],
            options: WorkerOptions(reach: .links))
    }
}
