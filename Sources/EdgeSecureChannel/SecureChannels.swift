// Secure-channel workers on a node: listener, per-channel decryptor (handshake + decryption), encryptor, registry.
// Long (~900 lines) because the listener, decryptor and encryptor share the registry's private state and its locks;
// splitting them would widen that state to the module. Handshake and message logic live in pure types elsewhere.
import EdgeSync
import EdgeCrypto
import EdgeIdentity
import EdgeNode
import EdgeNoise
import EdgeRouting
import EdgeWire
import Logging

/// The LocalInfo tag a decryptor attaches to every message it delivers (Ockam's type id and BARE-string data).
public enum SecureChannelLocalInfo {
    public static let typeIdentifier = "IDENTITY_SECURE_CHANNEL_IDENTIFIER"

    public static func make(_ identifier: Identifier) -> LocalInfo {
        LocalInfo(typeIdentifier: typeIdentifier, data: BARE.encodeString(identifier.description))
    }

    /// The peer identifier of a message that came out of a secure channel, or nil.
    public static func identifier(of message: LocalMessage) -> Identifier? {
        guard let info = message.localInfo(for: typeIdentifier), let text = try? BARE.decodeString(info.data) else {
            return nil
        }
        return try? Identifier(parsing: text)
    }
}

/// Options of a listener or an initiated channel.
public struct SecureChannelOptions: Sendable {
    public var trust: TrustContext
    public var suite: ChannelSuite
    /// Both sides give up on a handshake after this long (Ockam's responder has no limit; we do).
    public var handshakeTimeout: Duration
    /// Most handshakes a listener keeps in progress at once (bounds memory). When all are taken, a new message 1
    /// evicts the oldest handshake of the source holding the most (``HalfOpenHandshakes``); evictions are counted.
    public var maxHalfOpenHandshakes: Int
    /// Most handshakes in progress from one source (the first hop of message 1's return route: a transport
    /// connection); further message 1s from it are dropped and counted.
    public var maxHalfOpenHandshakesPerSource: Int
    /// An established channel on which nothing was decrypted for longer than this is closed (sending Close) and
    /// counted; nil: never (finding F4). Applies to channels of both roles opened with these options.
    public var idleTimeout: Duration?
    /// Most established channels a listener keeps; a new one beyond it closes the least recently used one (sending
    /// Close) and is counted (F4). Used: the last decrypted message, else the end of the handshake.
    public var maxChannels: Int
    /// When set, consulted for every new handshake instead of ``trust``: lets the trust policy change while
    /// listeners run (paired devices are added and removed live; see docs/pairing.md).
    public var trustProvider: (@Sendable () -> TrustContext)?

    /// The trust context a handshake starting now uses.
    public var currentTrust: TrustContext { trustProvider?() ?? trust }

    public init(
        trust: TrustContext = TrustContext(), suite: ChannelSuite = .aes256GCM, handshakeTimeout: Duration = .seconds(30),
        maxHalfOpenHandshakes: Int = 256, maxHalfOpenHandshakesPerSource: Int = 64,
        idleTimeout: Duration? = .seconds(6 * 3600), maxChannels: Int = 1024
    ) {
        self.idleTimeout = idleTimeout
        self.maxChannels = maxChannels
        self.trust = trust
        self.suite = suite
        self.handshakeTimeout = handshakeTimeout
        self.maxHalfOpenHandshakes = maxHalfOpenHandshakes
        self.maxHalfOpenHandshakesPerSource = maxHalfOpenHandshakesPerSource
    }
}

/// A channel as shown by `secure-channel list/show`.
public struct SecureChannelInfo: Sendable, Hashable {
    public enum Role: String, Sendable { case initiator, responder }
    public var encryptor: Address
    public var decryptor: Address
    public var role: Role
    public var peer: Identifier
    public var remoteRoute: Route
    public var listener: String?
    public var suite: ChannelSuite
    /// The code derived from the handshake hash; the same on both ends (docs/pairing.md).
    public var verificationCode: VerificationCode
}

/// Counters for status and metrics.
public struct SecureChannelCounters: Sendable, Equatable {
    public var handshakesCompleted: UInt64 = 0
    public var handshakesFailed: UInt64 = 0
    public var handshakesRefusedTrust: UInt64 = 0
    public var handshakesTimedOut: UInt64 = 0
    /// Message 1s dropped because their source had ``SecureChannelOptions/maxHalfOpenHandshakesPerSource`` in progress.
    public var handshakesDroppedOverCap: UInt64 = 0
    /// Half-open handshakes evicted to admit a newer one when the listener was full (F3).
    public var handshakesEvicted: UInt64 = 0
    public var messagesEncrypted: UInt64 = 0
    public var messagesDecrypted: UInt64 = 0
    public var decryptionFailures: UInt64 = 0
    public var closesReceived: UInt64 = 0
    /// Established channels closed because nothing was decrypted on them for ``SecureChannelOptions/idleTimeout``.
    public var channelsClosedIdle: UInt64 = 0
    /// Established channels closed to stay within a listener's ``SecureChannelOptions/maxChannels`` (least recently used).
    public var channelsEvictedOverCap: UInt64 = 0
}

/// Secure channels of one node: the local identity, listeners, channels and the attributes learnt from peers.
public final class SecureChannels: Sendable {
    public let node: Node
    public let local: SecureChannelCredentials
    let logger: Logger
    /// Failed handshakes: anyone who can reach a listener can cause one per message 1 (docs/security.md).
    let handshakeFailureLog = LogRateLimiter()
    /// Message 1s dropped over a source's half-open limit: a flooding source causes one per message 1.
    let handshakeOverCapLog = LogRateLimiter()
    /// Responder handshakes that timed out: a peer that sends message 1s and stops causes one per message 1.
    let handshakeTimeoutLog = LogRateLimiter()

    private struct State: ~Copyable {
        var channels: [Address: Channel] = [:]  // by encryptor address
        var halfOpen: [String: HalfOpenHandshakes] = [:]  // per listener
        var attributes: [Identifier: [Identifier: [String: String]]] = [:]
        var failures: [Address: SecureChannelError] = [:]  // last failure per decryptor, for tests and status
        /// Closes idle channels periodically (started with the first channel that has an idle timeout).
        var reaper: Task<Void, Never>?
        var reapInterval: Duration = .seconds(60)
        /// Tasks waiting in ``waitUntilClosed(_:)``, by encryptor address and waiter id.
        var closeWaiters: [Address: [Int: CheckedContinuation<String?, Never>]] = [:]
        var nextWaiter = 0
        /// Why the most recently closed channels closed (at most ``recentCloseLimit``, oldest forgotten first), so a
        /// request that reaches a channel just after it closed can say why.
        var recentCloses: [Address: String] = [:]
        var recentCloseOrder: [Address] = []
    }

    private let state = EdgeMutex(State())
    private let counterStorage = EdgeMutex(SecureChannelCounters())
    /// The time idle timeouts and "least recently used" are measured with (tests inject a manual clock).
    let clock: @Sendable () -> ContinuousClock.Instant

    public init(
        node: Node, local: SecureChannelCredentials, logger: Logger? = nil,
        clock: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.node = node
        self.clock = clock
        self.local = local
        var logger = logger ?? node.logger
        logger[metadataKey: "component"] = "secure-channel"
        self.logger = logger
    }

    public var counters: SecureChannelCounters { counterStorage.withLock { $0 } }
    func count(_ update: (inout SecureChannelCounters) -> Void) { counterStorage.withLock { update(&$0) } }

    public var channels: [SecureChannelInfo] {
        state.withLock { $0.channels.values.compactMap { $0.info } }.sorted { $0.encryptor.description < $1.encryptor.description }
    }

    public func channel(_ encryptor: Address) -> SecureChannelInfo? { state.withLock { $0.channels[encryptor] }?.info }

    /// The last handshake failure recorded for a decryptor address (nil if none).
    public func failure(at decryptor: Address) -> SecureChannelError? { state.withLock { $0.failures[decryptor] } }

    /// Verified credential attributes of a peer, by authority.
    public func attributes(of peer: Identifier) -> [Identifier: [String: String]] {
        state.withLock { $0.attributes[peer] ?? [:] }
    }

    // MARK: Access control

    /// An access control for workers: only messages that came out of a secure channel whose peer satisfies `policy`.
    public func accessControl(_ policy: TrustPolicy) -> IncomingAccessControl {
        { [self] message in
            guard let peer = SecureChannelLocalInfo.identifier(of: message) else { return false }
            return policy.allows(PeerInfo(identifier: peer, attributes: self.attributes(of: peer)))
        }
    }

    // MARK: Listener

    /// Starts a listener (Ockam's default name is `api`) that spawns a responder for every first message.
    public func startListener(name: String = "api", options: SecureChannelOptions = SecureChannelOptions()) throws {
        // Reachable from every link (as Ockam's listener is a consumer of its TCP listener's connections).
        try node.startWorker(
            ListenerWorker(channels: self, name: name, options: options), at: .local(name),
            options: WorkerOptions(reach: .links))
    }

    func admitHandshake(
        listener: String, decryptor: Address, source: Address, options: SecureChannelOptions
    ) -> HalfOpenHandshakes.Admission {
        state.withLock { state in
            var table = state.halfOpen[listener] ?? HalfOpenHandshakes(cap: 1, perSourceCap: 1)
            state.halfOpen[listener] = nil  // (no copy-on-write of the table while it changes)
            table.cap = max(1, options.maxHalfOpenHandshakes)
            table.perSourceCap = max(1, options.maxHalfOpenHandshakesPerSource)
            defer { state.halfOpen[listener] = table }
            return table.admit(decryptor, from: source)
        }
    }

    func releaseHandshake(listener: String?, decryptor: Address) {
        guard let listener else { return }
        state.withLock { _ = $0.halfOpen[listener]?.release(decryptor) }
    }

    public func halfOpenHandshakes(listener: String) -> Int { state.withLock { $0.halfOpen[listener]?.count ?? 0 } }

    // MARK: Initiator

    /// Opens a channel to the listener at the end of `route` (e.g. `[1#host:port, 0#api]`) and returns when the
    /// handshake is complete (after message 3 is sent).
    public func createChannel(to route: Route, options: SecureChannelOptions = SecureChannelOptions()) async throws
        -> SecureChannelInfo
    {
        let channel = Channel(
            owner: self, role: .initiator, listener: nil, options: options, decryptor: .random(), encryptor: .random())
        let handshake = try SecureChannelHandshake(
            role: .initiator, suite: options.suite, local: local, trust: options.currentTrust)
        let worker = DecryptorWorker(channel: channel, handshake: handshake, initialRoute: route)
        return try await withCheckedThrowingContinuation { continuation in
            channel.setCompletion(continuation)
            do {
                try node.startWorker(worker, at: channel.decryptor, options: DecryptorWorker.workerOptions)
            } catch {
                channel.complete(.failure(error))
            }
        }
    }

    /// Points an initiated channel at a new route to the peer's decryptor (e.g. through another relay). The
    /// responder follows automatically (route tracking).
    public func updateRemoteRoute(_ encryptor: Address, to route: Route) throws {
        guard let channel = state.withLock({ $0.channels[encryptor] }) else { throw SecureChannelError.closed }
        channel.updateRemoteRoute(route)
    }

    /// Closes a channel: sends an encrypted Close to the peer and stops both workers.
    public func close(_ encryptor: Address) async {
        guard let channel = state.withLock({ $0.channels[encryptor] }) else { return }
        await channel.close(sendClose: true, reason: "closed locally")
    }

    // MARK: Registry (used by Channel)

    func register(_ channel: Channel) {
        let startReaper: Duration? = state.withLock { state in
            state.channels[channel.encryptor] = channel
            guard let idle = channel.options.idleTimeout else { return nil }
            // Check about ten times per idle timeout (between 100 ms and a minute), so a channel is closed at most
            // about 10 % late.
            let interval = min(max(idle / 10, .milliseconds(100)), .seconds(60))
            state.reapInterval = min(state.reapInterval, interval)
            return state.reaper == nil ? interval : nil
        }
        if startReaper != nil {
            let task = Task { [weak self] in
                while let interval = self?.state.withLock({ $0.reapInterval }),
                    (try? await Task.sleep(for: interval)) != nil
                {
                    guard let self else { return }
                    await self.closeIdleChannels()
                }
            }
            state.withLock { $0.reaper = $0.reaper ?? task }
        }
    }
    static let recentCloseLimit = 256

    func unregister(_ channel: Channel, reason: String) {
        let waiters = state.withLock { state in
            _ = state.channels.removeValue(forKey: channel.encryptor)
            state.recentCloses[channel.encryptor] = reason
            state.recentCloseOrder.append(channel.encryptor)
            if state.recentCloseOrder.count > Self.recentCloseLimit {
                state.recentCloses[state.recentCloseOrder.removeFirst()] = nil
            }
            return state.closeWaiters.removeValue(forKey: channel.encryptor)
        }
        if let waiters { for waiter in waiters.values { waiter.resume(returning: reason) } }
    }

    /// Why the channel at `encryptor` closed, if it closed recently (the last 256 closes are remembered).
    public func closeReason(_ encryptor: Address) -> String? { state.withLock { $0.recentCloses[encryptor] } }

    /// Waits until the channel at `encryptor` closes and returns why ("closed by peer I…", …); returns at once with
    /// that reason if it closed recently, else "not open" if no such channel is open, and nil if the waiting task is
    /// cancelled.
    public func waitUntilClosed(_ encryptor: Address) async -> String? {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
                let open: Bool = state.withLock { state in
                    guard state.channels[encryptor] != nil else { return false }
                    if Task.isCancelled { return false }
                    state.closeWaiters[encryptor, default: [:]][id] = continuation
                    return true
                }
                if !open {
                    continuation.resume(returning: Task.isCancelled ? nil : closeReason(encryptor) ?? "not open")
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<String?, Never>? in
                let waiter = state.closeWaiters[encryptor]?.removeValue(forKey: id)
                if state.closeWaiters[encryptor]?.isEmpty == true { state.closeWaiters[encryptor] = nil }
                return waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Tasks waiting in ``waitUntilClosed(_:)`` for the channel at `encryptor` (tests).
    func closeWaiterCount(_ encryptor: Address) -> Int { state.withLock { $0.closeWaiters[encryptor]?.count ?? 0 } }

    /// A request along `route`, which passes through the channels `through` (as ``route(for:options:)`` opened
    /// them): fails as soon as one of them closes, instead of waiting out `timeout` for a reply that cannot come.
    /// That is what happens when the listener's trust policy refuses this node's identity: Noise XX completes on
    /// this side with message 3, and the responder answers it with Close.
    /// - Throws: ``SecureChannelError/closedBeforeReply(peer:reason:)``, or what ``Node/request(to:payload:timeout:)`` throws.
    public func request(
        to route: Route, payload: [UInt8], timeout: Duration, through opened: [SecureChannelInfo]
    ) async throws -> LocalMessage {
        guard !opened.isEmpty else { return try await node.request(to: route, payload: payload, timeout: timeout) }
        do {
            return try await withThrowingTaskGroup(of: LocalMessage?.self) { group in
                group.addTask { try await self.node.request(to: route, payload: payload, timeout: timeout) }
                for channel in opened {
                    group.addTask {
                        guard let reason = await self.waitUntilClosed(channel.encryptor) else { return nil }
                        throw SecureChannelError.closedBeforeReply(peer: channel.peer.description, reason: reason)
                    }
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let reply = result { return reply }
                }
                throw SecureChannelError.closed
            }
        } catch let error as NodeError {
            // The channel may have closed before the request reached it: its encryptor is gone (no worker there).
            if let gone = opened.first(where: { channel($0.encryptor) == nil }) {
                throw SecureChannelError.closedBeforeReply(
                    peer: gone.peer.description, reason: closeReason(gone.encryptor) ?? "closed")
            }
            throw error
        }
    }

    func recordFailure(_ error: SecureChannelError, at decryptor: Address) {
        state.withLock { state in
            if state.failures.count > 1024 { state.failures.removeAll() }
            state.failures[decryptor] = error
        }
    }

    func learn(_ peer: PeerInfo) {
        state.withLock { $0.attributes[peer.identifier] = peer.attributes }
    }

    /// Closes every channel whose peer is `peer` (sending Close), at once — revocation.
    ///
    /// - Returns: the encryptor addresses of the channels closed.
    @discardableResult
    public func closeChannels(withPeer peer: Identifier, reason: String = "peer revoked") async -> [Address] {
        let matching = state.withLock { $0.channels.values.filter { $0.info?.peer == peer } }
        for channel in matching { await channel.close(sendClose: true, reason: reason) }
        return matching.map(\.encryptor).sorted { $0.description < $1.description }
    }

    /// Closes every channel (sending Close) — used at shutdown.
    public func closeAll() async {
        let (all, reaper) = state.withLock { state in
            defer { state.reaper = nil }
            return (Array(state.channels.values), state.reaper)
        }
        reaper?.cancel()
        for channel in all { await channel.close(sendClose: true, reason: "node shutting down") }
    }

    // MARK: Reclaiming established channels (F4)

    /// Closes (sending Close) every established channel on which nothing was decrypted for longer than its
    /// ``SecureChannelOptions/idleTimeout``, as of ``clock``; runs periodically once such a channel exists.
    ///
    /// - Returns: the encryptor addresses of the channels closed.
    @discardableResult
    public func closeIdleChannels() async -> [Address] {
        let now = clock()
        let idle = state.withLock { state in
            state.channels.values.filter { channel in
                guard let timeout = channel.options.idleTimeout else { return false }
                return now - channel.lastUsed > timeout
            }
        }
        var closed: [Address] = []
        for channel in idle
        where await channel.close(sendClose: true, reason: "nothing received for more than \(channel.options.idleTimeout!)") {
            count { $0.channelsClosedIdle += 1 }
            closed.append(channel.encryptor)
        }
        return closed
    }

    /// Keeps a listener within its ``SecureChannelOptions/maxChannels`` after `newest` was established, closing the
    /// least recently used of its other channels (sending Close).
    func enforceChannelCap(after newest: Channel) async {
        guard let listener = newest.listener else { return }
        let cap = max(1, newest.options.maxChannels)
        let victims: [Channel] = state.withLock { state in
            let others = state.channels.values.filter { $0.listener == listener && $0 !== newest && !$0.isClosed }
            guard others.count + 1 > cap else { return [] }
            return Array(others.sorted { $0.lastUsed < $1.lastUsed }.prefix(others.count + 1 - cap))
        }
        for channel in victims
        where await channel.close(sendClose: true, reason: "listener \(listener) is at its cap of \(cap) channels (least recently used)") {
            count { $0.channelsEvictedOverCap += 1 }
        }
    }
}

// MARK: - Channel shared state

/// State shared by one channel's decryptor worker and encryptor worker.
final class Channel: Sendable {
    struct Mutable: ~Copyable {
        var encryptor: OckamEncryptor?
        var remoteRoute: Route = []
        var peer: Identifier?
        var verificationCode: VerificationCode?
        var closed = false
        /// Set by the first ``Channel/close(sendClose:reason:)``, so that a channel is closed (and counted) once.
        var closing = false
        var completion: CheckedContinuation<SecureChannelInfo, any Error>?
        /// The last decrypted message, else the end of the handshake (F4: idle timeout, least recently used).
        var lastUsed: ContinuousClock.Instant?
    }

    /// Strong: workers of a channel may outlive every other reference to their `SecureChannels` (a node's worker
    /// tasks keep them), and must still be able to count, log and unregister. The cycle through `state.channels`
    /// ends when the channel closes (at the latest when the node shuts down and stops its workers).
    let owner: SecureChannels
    let role: SecureChannelInfo.Role
    let listener: String?
    let options: SecureChannelOptions
    let decryptor: Address
    let encryptor: Address
    private let mutable = EdgeMutex(Mutable())

    init(
        owner: SecureChannels, role: SecureChannelInfo.Role, listener: String?, options: SecureChannelOptions,
        decryptor: Address, encryptor: Address
    ) {
        self.owner = owner
        self.role = role
        self.listener = listener
        self.options = options
        self.decryptor = decryptor
        self.encryptor = encryptor
    }

    var info: SecureChannelInfo? {
        mutable.withLock { m in
            guard let peer = m.peer, let code = m.verificationCode else { return nil }
            return SecureChannelInfo(
                encryptor: encryptor, decryptor: decryptor, role: role, peer: peer, remoteRoute: m.remoteRoute,
                listener: listener, suite: options.suite, verificationCode: code)
        }
    }

    var remoteRoute: Route { mutable.withLock { $0.remoteRoute } }
    var isClosed: Bool { mutable.withLock { $0.closed } }
    var lastUsed: ContinuousClock.Instant { mutable.withLock { $0.lastUsed } ?? owner.clock() }

    /// Records that a message was decrypted (or the handshake completed) now.
    func markUsed() {
        let now = owner.clock()
        mutable.withLock { $0.lastUsed = now }
    }

    func setCompletion(_ continuation: CheckedContinuation<SecureChannelInfo, any Error>) {
        mutable.withLock { $0.completion = continuation }
    }

    func complete(_ result: Result<SecureChannelInfo, any Error>) {
        let continuation = mutable.withLock { m in
            defer { m.completion = nil }
            return m.completion
        }
        continuation?.resume(with: result)
    }

    func establish(_ established: EstablishedChannel, remoteRoute: Route) {
        mutable.withLock { m in
            m.encryptor = established.encryptor
            m.remoteRoute = remoteRoute
            m.peer = established.peer.identifier
            m.verificationCode = VerificationCode(handshakeHash: established.handshakeHash)
        }
        markUsed()
    }

    func updateRemoteRoute(_ route: Route) { mutable.withLock { $0.remoteRoute = route } }

    /// Encrypts one plaintext message under the channel's send key (one at a time: nonces never repeat).
    func encrypt(_ message: SecureChannelMessage) throws -> [UInt8] {
        let plaintext = message.encode()
        return try mutable.withLock { (m: inout Mutable) throws -> [UInt8] in
            guard !m.closed, m.encryptor != nil else { throw SecureChannelError.closed }
            return try m.encryptor!.encrypt(plaintext)
        }
    }

    /// Tears the channel down once: optionally tells the peer, stops both workers, unregisters.
    /// - Returns: whether this call closed it (false if it was already closing).
    @discardableResult
    func close(sendClose: Bool, reason: String) async -> Bool {
        let first: Bool = mutable.withLock { m in
            if m.closed || m.closing { return false }
            m.closing = true
            // With a Close to send, `closed` is set after encrypting it.
            if !(sendClose && m.encryptor != nil) { m.closed = true }
            return true
        }
        guard first else { return false }
        if sendClose, let ciphertext = try? encrypt(.close) {
            try? await owner.node.send(
                LocalMessage(onwardRoute: remoteRoute, returnRoute: [encryptor], payload: ciphertext))
        }
        mutable.withLock { $0.closed = true }
        owner.unregister(self, reason: reason)
        owner.logger.info("secure channel \(encryptor) closed: \(reason)")
        owner.node.stopWorkerNoWait(at: encryptor)
        owner.node.stopWorkerNoWait(at: decryptor)
        complete(.failure(SecureChannelError.closed))
        return true
    }
}

// MARK: - Workers

/// `api` (or another name): spawns a responder per first message (spec §5.1).
struct ListenerWorker: Worker {
    let channels: SecureChannels  // strong, for the reason given at `Channel.owner`
    let name: String
    let options: SecureChannelOptions

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        let channel = Channel(
            owner: channels, role: .responder, listener: name, options: options, decryptor: .random(),
            encryptor: .random())
        // The source is the connection message 1 came in on (F3: fairness between connections).
        let source = message.returnRoute.addresses.first ?? .local("")
        switch channels.admitHandshake(listener: name, decryptor: channel.decryptor, source: source, options: options) {
        case .refusedSourceFull:
            channels.count { $0.handshakesDroppedOverCap += 1 }
            channels.handshakeOverCapLog.log(
                "listener \(name): \(SecureChannelError.tooManyHandshakes(options.maxHalfOpenHandshakesPerSource)) from \(source)",
                to: context.logger)
            return
        case .admittedEvicting(let evicted):
            channels.count { $0.handshakesEvicted += UInt64(evicted.count) }
            for decryptor in evicted {
                context.logger.debug("listener \(name): full; evicted the oldest half-open handshake (\(decryptor)) of its busiest source")
                context.node.stopWorkerNoWait(at: decryptor)
            }
        case .admitted:
            break
        }
        do {
            let handshake = try SecureChannelHandshake(
                role: .responder, suite: options.suite, local: channels.local, trust: options.currentTrust)
            try context.node.startWorker(
                DecryptorWorker(channel: channel, handshake: handshake, initialRoute: nil), at: channel.decryptor,
                options: DecryptorWorker.workerOptions)
        } catch {
            channels.releaseHandshake(listener: name, decryptor: channel.decryptor)
            throw error
        }
        var forwarded = message
        forwarded.onwardRoute.replaceFront(with: channel.decryptor)
        try await context.forward(forwarded)
    }
}

/// The per-channel worker at `decryptor_remote`: runs the handshake, then decrypts (Ockam's HandshakeWorker).
final class DecryptorWorker: Worker {
    /// Reachable from every link: its address is 128 random bits and everything it accepts is authenticated (a
    /// handshake message or AEAD ciphertext), and a peer whose connection was replaced reaches it over the new one
    /// (responder route tracking).
    static let workerOptions = WorkerOptions(reach: .linksAuthenticated)

    private struct Mutable: ~Copyable {
        var handshake: SecureChannelHandshake?
        var decryptor: OckamDecryptor?
        var peer: PeerInfo?
        var peerIdentity: Identity?
        var timeout: OneShotTimer?
    }

    let channel: Channel
    /// Initiator: the route to the listener.
    let initialRoute: Route?
    private let mutable: EdgeMutex<Mutable>

    init(channel: Channel, handshake: SecureChannelHandshake, initialRoute: Route?) {
        self.channel = channel
        self.initialRoute = initialRoute
        mutable = EdgeMutex(Mutable(handshake: handshake))
    }

    private var owner: SecureChannels { channel.owner }

    func initialize(context: WorkerContext) async throws {
        let timeout = channel.options.handshakeTimeout
        // A dispatch timer, not a sleeping task: a cancelled sleep would hold its memory for the whole timeout.
        let timer = OneShotTimer(after: timeout) { [channel, owner] in
            guard !channel.isClosed, channel.info == nil else { return }
            owner.count { $0.handshakesTimedOut += 1 }
            owner.recordFailure(.handshakeTimeout, at: channel.decryptor)
            let text = "secure channel handshake at \(channel.decryptor) timed out after \(timeout)"
            // An initiator's timeout ends a request of this node's own and is logged every time; a responder's is a
            // peer's doing.
            if channel.role == .initiator {
                owner.logger.warning("\(text)")
            } else {
                owner.handshakeTimeoutLog.log(text, to: owner.logger)
            }
            channel.complete(.failure(SecureChannelError.handshakeTimeout))
            context.node.stopWorkerNoWait(at: channel.decryptor)
        }
        mutable.withLock { $0.timeout = timer }
        guard let route = initialRoute else { return }
        let message1: [UInt8]
        do {
            message1 = try mutable.withLock { (m: inout Mutable) throws(SecureChannelError) -> [UInt8] in
                try m.handshake!.start()
            }
        } catch {
            fail(error, context: context)
            return
        }
        do {
            try await context.send(to: route, payload: message1)
        } catch {
            fail(.handshakeFailed("cannot reach \(route): \(error)"), context: context)
        }
    }

    func shutdown(context: WorkerContext) async {
        let task = mutable.withLock { $0.timeout }
        task?.cancel()
        if channel.role == .responder {
            owner.releaseHandshake(listener: channel.listener, decryptor: channel.decryptor)
        }
        if !channel.isClosed && channel.info != nil {
            await channel.close(sendClose: false, reason: "decryptor stopped")
        }
        channel.complete(.failure(SecureChannelError.closed))
    }

    private func fail(_ error: SecureChannelError, context: WorkerContext) {
        owner.count {
            if case .trustPolicyRefused = error { $0.handshakesRefusedTrust += 1 } else { $0.handshakesFailed += 1 }
        }
        owner.recordFailure(error, at: channel.decryptor)
        if let suppressed = owner.handshakeFailureLog.admit() {
            context.logger.warning(
                "secure channel handshake failed (\(channel.role.rawValue)): \(error)\(LogRateLimiter.note(suppressed))")
        } else {
            context.logger.debug("secure channel handshake failed (\(channel.role.rawValue)): \(error)")
        }
        channel.complete(.failure(error))
        context.node.stopWorkerNoWait(at: channel.decryptor)
    }

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        let handshaking = mutable.withLock { $0.handshake != nil }
        if handshaking {
            await handleHandshake(message, context: context)
        } else {
            try await handleEncrypted(message, context: context)
        }
    }

    private func handleHandshake(_ message: LocalMessage, context: WorkerContext) async {
        let now = currentTimestamp()
        let output: SecureChannelHandshake.Output
        do {
            output = try mutable.withLock { (m: inout Mutable) throws(SecureChannelError) -> SecureChannelHandshake.Output in
                try m.handshake!.receive(message.payload, now: now)
            }
        } catch {
            fail(error, context: context)
            return
        }
        switch output {
        case .send(let reply):
            // Responder, message 2: back along msg1's return route.
            do {
                try await context.send(to: message.returnRoute, payload: reply)
            } catch {
                fail(.handshakeFailed("cannot reply: \(error)"), context: context)
            }
        case .sendThenEstablished(let message3, let established):
            do {
                try await context.send(to: message.returnRoute, payload: message3)
            } catch {
                fail(.handshakeFailed("cannot send message 3: \(error)"), context: context)
                return
            }
            await establish(established, remoteRoute: message.returnRoute, context: context)
        case .established(let established):
            await establish(established, remoteRoute: message.returnRoute, context: context)
        case .refused(let error, var encryptor):
            let close = try? encryptor.encrypt(SecureChannelMessage.close.encode())
            fail(error, context: context)  // counted and recorded before the peer can learn of it from the Close
            if let close {
                try? await context.node.send(
                    LocalMessage(onwardRoute: message.returnRoute, returnRoute: [channel.encryptor], payload: close))
            }
        }
    }

    private func establish(_ established: EstablishedChannel, remoteRoute: Route, context: WorkerContext) async {
        let timeout = mutable.withLock { m in
            m.handshake = nil
            m.decryptor = established.decryptor
            m.peer = established.peer
            m.peerIdentity = established.peerIdentity
            return m.timeout
        }
        timeout?.cancel()
        channel.establish(established, remoteRoute: remoteRoute)
        owner.learn(established.peer)
        if channel.role == .responder { owner.releaseHandshake(listener: channel.listener, decryptor: channel.decryptor) }
        for rejected in established.rejectedCredentials {
            context.logger.notice("peer \(established.peer.identifier) presented a credential that did not verify: \(rejected)")
        }
        do {
            try context.node.startWorker(EncryptorWorker(channel: channel), at: channel.encryptor)
        } catch {
            fail(.handshakeFailed("cannot start encryptor: \(error)"), context: context)
            return
        }
        owner.register(channel)
        owner.count { $0.handshakesCompleted += 1 }
        if channel.role == .responder { await owner.enforceChannelCap(after: channel) }
        context.logger.info(
            "secure channel \(channel.encryptor) established (\(channel.role.rawValue)) with \(established.peer.identifier)")
        if channel.role == .responder {
            // What a device with a display shows when it is being paired (docs/pairing.md); never the raw hash.
            context.logger.info(
                "secure channel from \(established.peer.identifier) (verification code \(VerificationCode(handshakeHash: established.handshakeHash)))")
        }
        if let info = channel.info { channel.complete(.success(info)) }
    }

    private func handleEncrypted(_ message: LocalMessage, context: WorkerContext) async throws {
        let result: Result<(UInt64, [UInt8], Bool), NoiseError> = mutable.withLock { m in
            guard m.decryptor != nil else { return .failure(.wrongState("no decryptor")) }
            let before = m.decryptor!.highestNonce
            do {
                let (nonce, plaintext) = try m.decryptor!.decrypt(message.payload)
                return .success((nonce, plaintext, nonce > before || before == 0 && nonce == 0))
            } catch let error as NoiseError {
                return .failure(error)
            } catch {
                return .failure(.internalFailure)
            }
        }
        let nonce: UInt64
        let plaintext: [UInt8]
        let newest: Bool
        switch result {
        case .success(let value): (nonce, plaintext, newest) = value
        case .failure(let error):
            owner.count { $0.decryptionFailures += 1 }
            context.logger.debug("dropped a message on \(channel.encryptor): \(error)")
            return
        }
        _ = nonce
        owner.count { $0.messagesDecrypted += 1 }
        channel.markUsed()
        let decoded: SecureChannelMessage
        do {
            decoded = try SecureChannelMessage(decoding: plaintext)
        } catch {
            context.logger.warning("undecodable plaintext on \(channel.encryptor): \(error)")
            return
        }
        let peer = mutable.withLock { $0.peer }!
        switch decoded {
        case .payload(let onward, let innerReturn, let payload):
            if channel.role == .responder && newest {
                // Responder route tracking (spec §5.5): follow the newest valid message's path.
                var route = message.returnRoute
                if let peerDecryptor = channel.remoteRoute.addresses.last { route.append(peerDecryptor) }
                channel.updateRemoteRoute(route)
            }
            var returnRoute = innerReturn
            returnRoute.prepend(channel.encryptor)
            do {
                try await context.node.deliver(
                    LocalMessage(
                        onwardRoute: onward, returnRoute: returnRoute, payload: payload,
                        localInfo: [SecureChannelLocalInfo.make(peer.identifier)]),
                    origin: .secureChannel(channel.decryptor))
            } catch {
                context.logger.debug("decrypted message for \(onward) not delivered: \(error)")
            }
        case .refreshCredentials(let refresh):
            refreshCredentials(refresh, peer: peer, context: context)
        case .close:
            owner.count { $0.closesReceived += 1 }
            await channel.close(sendClose: false, reason: "closed by peer \(peer.identifier)")
        }
    }

    private func refreshCredentials(_ refresh: RefreshCredentials, peer: PeerInfo, context: WorkerContext) {
        guard refresh.identity.identifier == peer.identifier else {
            context.logger.warning("RefreshCredentials for another identity (\(refresh.identity.identifier)) ignored")
            return
        }
        let now = currentTimestamp()
        var attributes = peer.attributes
        for credential in refresh.credentials {
            do {
                try credential.verify(subject: peer.identifier, authorities: channel.options.currentTrust.authorities, now: now)
                attributes[credential.issuer, default: [:]].merge(credential.attributes.strings) { $1 }
            } catch {
                context.logger.notice("refreshed credential from \(peer.identifier) did not verify: \(error)")
            }
        }
        let updated = PeerInfo(identifier: peer.identifier, attributes: attributes)
        mutable.withLock { $0.peer = updated }
        owner.learn(updated)
    }
}

/// The channel's `encryptor` address: local apps send plaintext here (spec §5.5).
struct EncryptorWorker: Worker {
    let channel: Channel

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        var onward = message.onwardRoute
        onward.popFront()
        let ciphertext = try channel.encrypt(.payload(onwardRoute: onward, returnRoute: message.returnRoute, payload: message.payload))
        channel.owner.count { $0.messagesEncrypted += 1 }
        // Payload messages travel with an empty return route; transports on the way prepend their hops.
        try await context.node.send(LocalMessage(onwardRoute: channel.remoteRoute, returnRoute: [], payload: ciphertext))
    }

    func shutdown(context: WorkerContext) async {
        if !channel.isClosed { await channel.close(sendClose: true, reason: "encryptor stopped") }
    }
}

extension SecureChannels {
    /// Sends a RefreshCredentials message with the local identity and `credentials` on a channel.
    public func refreshCredentials(on encryptor: Address, credentials: [CredentialAndPurposeKey]) async throws {
        guard let channel = state.withLock({ $0.channels[encryptor] }) else { throw SecureChannelError.closed }
        let message = SecureChannelMessage.refreshCredentials(
            RefreshCredentials(identity: local.identity, credentials: credentials))
        let ciphertext = try channel.encrypt(message)
        try await node.send(LocalMessage(onwardRoute: channel.remoteRoute, returnRoute: [encryptor], payload: ciphertext))
    }
}

extension SecureChannels {
    /// Turns multiaddr route segments into a route, opening a secure channel at each `/secure/<listener>` over the
    /// route so far and continuing through the channel's encryptor (Ockam's `/secure/api` semantics).
    ///
    /// - Returns: the route and the channels opened on the way (innermost last).
    public func route(
        for segments: [Multiaddr.RouteSegment], options: SecureChannelOptions = SecureChannelOptions()
    ) async throws -> (route: Route, opened: [SecureChannelInfo]) {
        var route = Route()
        var opened: [SecureChannelInfo] = []
        for segment in segments {
            switch segment {
            case .address(let address):
                route.append(address)
            case .secureChannel(let listener):
                route.append(.local(listener))
                let channel = try await createChannel(to: route, options: options)
                opened.append(channel)
                route = [channel.encryptor]
            }
        }
        return (route, opened)
    }
}
