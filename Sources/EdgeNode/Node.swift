// The node: a registry of workers and transports that routes LocalMessages by their onward route.
// Long (~700 lines): the router, flow control and worker lifecycle share the registry's one lock, so a message is
// routed and a worker stopped against the same state.
import EdgeSync
import EdgeRouting
import Logging

/// Errors of the node runtime.
public enum NodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No worker is registered at the address.
    case unknownAddress(Address)
    /// The worker at the address has stopped (or is stopping).
    case workerStopped(Address)
    /// The address is already taken by another worker.
    case addressInUse(Address)
    /// The worker's mailbox was full and the sender chose not to wait (``Node/send(_:ifFull:)``).
    case mailboxFull(Address)
    /// The link a request went out on (named by its sender worker) closed before the reply arrived.
    case linkClosed(Address)
    /// No transport is registered for the transport type.
    case noTransport(TransportType)
    /// A message arrived with an empty onward route.
    case emptyOnwardRoute
    /// The node does not forward messages from transports to remote hops (`--no-forwarding`).
    case forwardingDisabled(Address)
    /// The forwarding policy does not allow this remote hop for a message from a link or secure channel.
    case forwardingNotAllowed(Address)
    /// No reply arrived within the timeout.
    case timeout(Duration)
    /// The node is shutting down.
    case shuttingDown
    /// The destination worker refused the message (access control).
    case accessDenied(Address)
    /// A request's message reached a worker on this node that failed to handle it (e.g. a transport's sender
    /// refusing an over-size message); the reason is the worker's error.
    case workerFailed(Address, reason: String)

    public var description: String {
        switch self {
        case .unknownAddress(let a): return "no worker at address \(a)"
        case .workerStopped(let a): return "worker \(a) has stopped"
        case .addressInUse(let a): return "address \(a) is already in use"
        case .mailboxFull(let a): return "the mailbox of \(a) is full"
        case .linkClosed(let a): return "the link \(a) closed before a reply arrived"
        case .noTransport(let t): return "no transport registered for transport type \(t)"
        case .emptyOnwardRoute: return "message has an empty onward route"
        case .forwardingDisabled(let a): return "forwarding to remote hop \(a) is disabled on this node"
        case .forwardingNotAllowed(let a): return "forwarding to remote hop \(a) is not allowed on this node"
        case .timeout(let d): return "no reply within \(d)"
        case .shuttingDown: return "node is shutting down"
        case .accessDenied(let a): return "access to \(a) denied"
        case .workerFailed(let a, let reason): return "worker \(a) could not handle the message: \(reason)"
        }
    }
}

/// An addressable actor-like unit: receives one message at a time from its mailbox.
public protocol Worker: Sendable {
    /// Called once before the first message.
    func initialize(context: WorkerContext) async throws
    /// Handles one message. The worker's own address is still at the front of `message.onwardRoute`.
    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws
    /// Called once after the mailbox has closed and drained.
    func shutdown(context: WorkerContext) async
}

extension Worker {
    public func initialize(context: WorkerContext) async throws {}
    public func shutdown(context: WorkerContext) async {}
}

/// Decides whether a message may be delivered to a worker (Ockam's incoming access control).
public typealias IncomingAccessControl = @Sendable (LocalMessage) -> Bool

/// Options for a worker.
public struct WorkerOptions: Sendable {
    /// Messages buffered before senders are made to wait.
    public var mailboxCapacity: Int
    /// Bytes (payloads and addresses) buffered before senders are made to wait; a message alone in the mailbox is
    /// accepted whatever its size.
    public var mailboxBytes: Int
    /// Checked before a message is enqueued; refusals are counted and logged.
    public var accessControl: IncomingAccessControl
    /// Which messages from transport links may reach the worker at all (flow control, checked before
    /// ``accessControl``); messages from this node's workers and out of secure channels are not restricted by it.
    public var reach: Reach

    /// Flow control: what may reach a worker from the network (see docs/routing.md "Flow control").
    public enum Reach: Sendable, Hashable {
        /// Only this node's own workers, the CLI and the control socket, messages out of secure channels, and the
        /// links this worker has itself sent a message through (the replies it asked for). The default.
        case local
        /// Also every transport link: secure channel listeners, services configured as public, relays.
        case links
        /// Every transport link too, for a worker that accepts only authenticated input under an unguessable address
        /// (a secure channel's decryptor); not listed among the public workers in `status`.
        case linksAuthenticated
        /// A transport's sender worker for one link: reachable from its own link. A message routed to it registers
        /// the message's reply address as a consumer of the link, so the link's replies may reach that worker.
        case linkSender
    }

    public init(
        mailboxCapacity: Int = 256, mailboxBytes: Int = 1 << 20, reach: Reach = .local,
        accessControl: @escaping IncomingAccessControl = { _ in true }
    ) {
        self.mailboxCapacity = mailboxCapacity
        self.mailboxBytes = mailboxBytes
        self.reach = reach
        self.accessControl = accessControl
    }
}

/// Where a message that is being routed came from: what flow control decides by.
public enum MessageOrigin: Sendable, Hashable, CustomStringConvertible {
    /// A worker of this node, the CLI or the control socket.
    case local
    /// A transport link (a TCP connection, a serial or BLE link), named by its sender worker's address.
    case link(Address)
    /// The secure channel whose decryptor is at this address (the peer is authenticated).
    case secureChannel(Address)

    public var description: String {
        switch self {
        case .local: "local"
        case .link(let sender): "link \(sender)"
        case .secureChannel(let decryptor): "secure channel \(decryptor)"
        }
    }
}

/// Which remote hops (`1#host:port`, `4#…`) a node resolves for messages that came from a link or out of a secure
/// channel, i.e. on a remote party's behalf. Messages from this node's own workers, the CLI and the control socket
/// may go anywhere (a local user asked for it).
public struct ForwardingPolicy: Sendable {
    /// Whether such messages may reach remote hops at all (`--no-forwarding`, `node.forwarding: false`).
    public var enabled: Bool
    /// Decides for one remote hop (the transport's address as written in the route).
    public var allows: @Sendable (Address) -> Bool
    /// What the policy allows now, for `status` (e.g. `["10.0.0.5:4000", "10.1.0.0/16:443"]`).
    public var summary: @Sendable () -> [String]

    public init(
        enabled: Bool = true, summary: @escaping @Sendable () -> [String], allows: @escaping @Sendable (Address) -> Bool
    ) {
        self.enabled = enabled
        self.allows = allows
        self.summary = summary
    }

    /// Forward nothing on a remote party's behalf.
    public static let none = ForwardingPolicy(enabled: false, summary: { [] }) { _ in false }
    /// Forward to any remote hop: an open relay, for tests and closed labs only.
    public static let any = ForwardingPolicy(summary: { ["*"] }) { _ in true }
}

/// What a worker can do: send messages, start and stop workers, read its own address.
public struct WorkerContext: Sendable {
    public let node: Node
    /// The worker's primary address (used as return route of the messages it sends).
    public let address: Address
    public var logger: Logger

    /// Sends `payload` to `route` with return route `[self.address]`.
    public func send(to route: Route, payload: [UInt8], localInfo: [LocalInfo] = []) async throws {
        try await node.send(
            LocalMessage(onwardRoute: route, returnRoute: [address], payload: payload, localInfo: localInfo))
    }

    /// Replies to a peer from a worker many peers share: if the next hop's mailbox is full (a peer that does not read
    /// its replies), the reply is dropped and counted instead of stalling the worker for everyone else.
    public func reply(to route: Route, payload: [UInt8]) async throws {
        try await node.send(LocalMessage(onwardRoute: route, returnRoute: [address], payload: payload), ifFull: .drop)
    }

    /// Routes a message as it is (the caller adjusted its routes).
    public func forward(_ message: LocalMessage) async throws {
        try await node.send(message)
    }
}

/// Counters kept by the node (exposed by `status` and metrics).
public struct NodeCounters: Sendable, Equatable {
    public var delivered: UInt64 = 0
    public var droppedUnknownAddress: UInt64 = 0
    public var droppedAccessDenied: UInt64 = 0
    public var droppedWorkerStopped: UInt64 = 0
    /// Messages whose sender chose not to wait for a full mailbox (a shared service's reply to a peer that does not
    /// read its replies).
    public var droppedMailboxFull: UInt64 = 0
    /// Messages whose remote next hop could not be reached (the connection was refused, timed out, was over a cap).
    public var droppedUnreachable: UInt64 = 0
    public var droppedHeartbeat: UInt64 = 0
    public var droppedForwardingDisabled: UInt64 = 0
    /// Messages from a link or secure channel whose remote next hop the forwarding policy does not allow.
    public var droppedForwardNotAllowed: UInt64 = 0
    /// Messages from a link to a worker that link may not reach (flow control).
    public var droppedFlowControl: UInt64 = 0
    public var workerErrors: UInt64 = 0
}

/// Resolves non-local addresses (`1#host:port`) to the local address of the worker that sends to that peer.
public protocol TransportResolver: Sendable {
    var transportType: TransportType { get }
    /// Returns the local address of a sender worker for `address`, connecting first if needed.
    func resolve(_ address: Address) async throws -> Address
}

/// A node: workers registered at addresses, transports registered per transport type.
///
/// Hop semantics follow Ockam (spec §1.4): a message goes to the worker named by the first onward
/// address; a non-local first hop is first resolved by the transport registered for its type.
public final class Node: Sendable {
    public struct Options: Sendable {
        /// Which remote hops (e.g. `1#host:port`) are resolved for messages that came from a link or out of a secure
        /// channel. A gateway forwards device messages to its uplinks; nothing else needs to relay.
        public var forwarding: ForwardingPolicy
        public var defaultMailboxCapacity: Int
        /// Called with every message just before it is enqueued for a worker (tests, tracing, packet capture).
        public var observer: (@Sendable (LocalMessage) -> Void)?

        public init(
            forwarding: ForwardingPolicy = .none, defaultMailboxCapacity: Int = 256,
            observer: (@Sendable (LocalMessage) -> Void)? = nil
        ) {
            self.forwarding = forwarding
            self.defaultMailboxCapacity = defaultMailboxCapacity
            self.observer = observer
        }
    }

    private struct Entry: Sendable {
        let mailbox: Mailbox
        let accessControl: IncomingAccessControl
        let reach: WorkerOptions.Reach
        /// Every address of the worker, the primary first (stopping it unregisters them without a scan).
        let addresses: [Address]
        var primary: Address { addresses[0] }
    }

    private struct Registry: ~Copyable {
        var workers: [Address: Entry] = [:]
        var tasks: [Address: Task<Void, Never>] = [:]
        var transports: [TransportType: any TransportResolver] = [:]
        var shuttingDown = false
        /// The inboxes of requests in progress, by their temporary address (``request(to:payload:timeout:)``).
        var pendingRequests: [Address: ReplyWorker] = [:]
        /// Flow control: per link (its sender's address), the addresses that sent through it and so may receive from
        /// it; and the reverse, so a stopping worker or link is forgotten without a scan.
        var consumers: [Address: Set<Address>] = [:]
        var consumedLinks: [Address: Set<Address>] = [:]
        /// Requests in progress by the link they went out on, so they fail at once when it closes.
        var requestsByLink: [Address: Set<Address>] = [:]

        /// Removes `addresses` from the worker table and from the flow-control tables (as consumers and as links).
        /// Returns the requests that went out on a removed link and have no reply waiting in their inbox: the caller
        /// fails them (outside the lock).
        @discardableResult
        mutating func remove(_ addresses: [Address]) -> [(ReplyWorker, link: Address)] {
            var orphaned: [(ReplyWorker, link: Address)] = []
            for address in addresses {
                for inbox in requestsByLink.removeValue(forKey: address) ?? [] {
                    if let worker = pendingRequests[inbox], (workers[inbox]?.mailbox.depth ?? 0) == 0 {
                        orphaned.append((worker, address))
                    }
                }
            }
            for address in addresses {
                workers[address] = nil
                if let links = consumedLinks.removeValue(forKey: address) {
                    for link in links { consumers[link]?.remove(address) }
                }
                if let members = consumers.removeValue(forKey: address) {
                    for member in members { consumedLinks[member]?.remove(address) }
                }
            }
            return orphaned
        }
    }

    /// Most addresses registered as consumers of one link; beyond it, replies to further ones are refused (counted
    /// as flow-control drops). Request inboxes and channels unregister when they stop, so this is only reached by a
    /// node with thousands of requests in flight over one link.
    static let maxConsumersPerLink = 4096

    public let logger: Logger
    public let options: Options
    private let registry = EdgeMutex(Registry())
    private let counterStorage = EdgeMutex(NodeCounters())
    private let refusalLog = LogRateLimiter(interval: Node.errorLogInterval)

    public init(logger: Logger = Logger(label: "ockam-edge.node"), options: Options = Options()) {
        self.logger = logger
        self.options = options
    }

    public var counters: NodeCounters { counterStorage.withLock { $0 } }

    func count(_ update: (inout NodeCounters) -> Void) { counterStorage.withLock { update(&$0) } }

    // MARK: Workers

    /// Starts a worker reachable at every address in `addresses` (the first is its primary address).
    public func startWorker(
        _ worker: any Worker, at addresses: [Address], options: WorkerOptions? = nil
    ) throws(NodeError) {
        precondition(!addresses.isEmpty, "a worker needs at least one address")
        let options = options ?? WorkerOptions(mailboxCapacity: self.options.defaultMailboxCapacity)
        let primary = addresses[0]
        let mailbox = Mailbox(capacity: options.mailboxCapacity, capacityBytes: options.mailboxBytes, address: primary)
        let entry = Entry(mailbox: mailbox, accessControl: options.accessControl, reach: options.reach, addresses: addresses)
        try registry.withLock { (registry: inout Registry) throws(NodeError) in
            if registry.shuttingDown { throw .shuttingDown }
            for address in addresses where registry.workers[address] != nil { throw .addressInUse(address) }
            for address in addresses { registry.workers[address] = entry }
        }
        var workerLogger = logger
        workerLogger[metadataKey: "worker"] = "\(primary)"
        let context = WorkerContext(node: self, address: primary, logger: workerLogger)
        let task = Task { [self] in
            await Node.$currentWorker.withValue(primary) {
                await self.run(worker, mailbox: mailbox, context: context, addresses: addresses)
            }
        }
        registry.withLock { $0.tasks[primary] = task }
    }

    public func startWorker(_ worker: any Worker, at address: Address, options: WorkerOptions? = nil) throws(NodeError)
    {
        try startWorker(worker, at: [address], options: options)
    }

    private func run(_ worker: any Worker, mailbox: Mailbox, context: WorkerContext, addresses: [Address]) async {
        do {
            try await worker.initialize(context: context)
        } catch {
            context.logger.error("worker failed to initialize: \(error)")
            unregister(addresses, mailbox: mailbox)
            mailbox.close()
            let dropped = mailbox.discardBuffered()
            if dropped > 0 { count { $0.droppedWorkerStopped += UInt64(dropped) } }
            await worker.shutdown(context: context)
            return
        }
        // A peer chooses how often a worker fails (e.g. messages the next hop would refuse): warnings are rate-limited
        // per worker, with a count of those suppressed since; the rest go to debug.
        let failureLog = LogRateLimiter(interval: Self.errorLogInterval)
        while let message = await mailbox.next() {
            do {
                try await worker.handleMessage(message, context: context)
            } catch {
                count { $0.workerErrors += 1 }
                if let suppressed = failureLog.admit() {
                    context.logger.warning("worker failed to handle a message: \(error)\(LogRateLimiter.note(suppressed))")
                } else {
                    context.logger.debug("worker failed to handle a message: \(error)")
                }
                // A request sent straight to this worker learns why at once instead of waiting out its timeout.
                if let from = message.returnRoute.first, let inbox = registry.withLock({ $0.pendingRequests[from] }) {
                    inbox.fail(NodeError.workerFailed(addresses[0], reason: "\(error)"))
                }
            }
        }
        await worker.shutdown(context: context)
        registry.withLock { _ = $0.tasks.removeValue(forKey: addresses[0]) }
    }

    private func unregister(_ addresses: [Address], mailbox: Mailbox) {
        let orphaned = registry.withLock { registry in
            registry.remove(addresses.filter { registry.workers[$0]?.mailbox === mailbox })
        }
        failRequests(orphaned)
    }

    /// Requests whose link closed learn it at once instead of waiting out their timeout.
    private func failRequests(_ orphaned: [(ReplyWorker, link: Address)]) {
        for (inbox, link) in orphaned { inbox.fail(NodeError.linkClosed(link)) }
    }

    /// Stops the worker registered at `address`: it stops receiving, handles what is already in its
    /// mailbox, then its `shutdown` runs. Returns when it has finished.
    public func stopWorker(at address: Address) async {
        let found: (Mailbox, [Address], Task<Void, Never>?, [(ReplyWorker, link: Address)])? = registry.withLock { registry in
            guard let entry = registry.workers[address] else { return nil }
            let addresses = entry.addresses.filter { registry.workers[$0]?.mailbox === entry.mailbox }
            let orphaned = registry.remove(addresses)
            return (entry.mailbox, addresses, registry.tasks[entry.primary], orphaned)
        }
        guard let (mailbox, addresses, task, orphaned) = found else { return }
        failRequests(orphaned)
        let refused = mailbox.close()
        if refused > 0 { count { $0.droppedWorkerStopped += UInt64(refused) } }
        if let task, Node.currentWorker.map({ !addresses.contains($0) }) ?? true { await task.value }
    }

    /// Stops a worker without waiting (safe to call from the worker itself).
    public func stopWorkerNoWait(at address: Address) {
        let (mailbox, orphaned): (Mailbox?, [(ReplyWorker, link: Address)]) = registry.withLock { registry in
            guard let entry = registry.workers[address] else { return (nil, []) }
            let orphaned = registry.remove(entry.addresses.filter { registry.workers[$0]?.mailbox === entry.mailbox })
            return (entry.mailbox, orphaned)
        }
        failRequests(orphaned)
        if let mailbox {
            let refused = mailbox.close()
            if refused > 0 { count { $0.droppedWorkerStopped += UInt64(refused) } }
        }
    }

    /// The shortest interval between two "worker failed" warnings of one worker (the others are logged at debug and
    /// counted in `workerErrors`).
    static let errorLogInterval: Duration = .seconds(10)

    /// The primary address of the worker whose task is running, if any (a worker stopping itself must not
    /// wait for its own task).
    @TaskLocal static var currentWorker: Address?

    public func hasWorker(at address: Address) -> Bool { registry.withLock { $0.workers[address] != nil } }

    /// Addresses with a registered worker, sorted for display.
    public var workerAddresses: [Address] {
        registry.withLock { Array($0.workers.keys) }.sorted { $0.description < $1.description }
    }

    /// Messages waiting in the mailbox of the worker at `address`.
    public func mailboxDepth(at address: Address) -> Int? {
        registry.withLock { $0.workers[address]?.mailbox }?.depth
    }

    // MARK: Transports

    public func registerTransport(_ transport: any TransportResolver) {
        registry.withLock { $0.transports[transport.transportType] = transport }
    }

    // MARK: Routing

    /// Routes a message from this node (a worker, the CLI, the control socket) to the worker named by its first
    /// onward address, resolving a remote first hop through its transport. Suspends while the destination mailbox is
    /// full.
    public func send(_ message: LocalMessage) async throws {
        try await route(message, origin: .local)
    }

    /// What a sender does when the destination's mailbox is full.
    public enum FullMailbox: Sendable {
        /// Wait for room (backpressure: the sender is slowed to the receiver's pace).
        case wait
        /// Drop the message, count it (`droppedMailboxFull`) and throw ``NodeError/mailboxFull(_:)``: for a worker
        /// shared by many peers replying to one of them, which must not stall the others when that peer does not read.
        case drop
    }

    /// ``send(_:)`` with a choice of what happens when the destination's mailbox is full.
    public func send(_ message: LocalMessage, ifFull: FullMailbox) async throws {
        try await route(message, origin: .local, ifFull: ifFull)
    }

    /// Routes a message that came from `origin`: flow control and the forwarding policy apply to a link's and a
    /// secure channel's messages (``MessageOrigin``). Throws why a message was not delivered (also counted).
    public func deliver(_ message: LocalMessage, origin: MessageOrigin) async throws {
        try await route(message, origin: origin)
    }

    /// Entry point for transport receivers: routes a message that arrived on the link whose sender worker is at
    /// `link`, and never throws; failures are counted and logged (the connection keeps running).
    public func deliverFromTransport(_ message: LocalMessage, link: Address) async {
        do {
            try await route(message, origin: .link(link))
        } catch {
            logger.debug("dropped message from transport: \(error)")
        }
    }

    /// What this node's flow control allows, for `status`: the forwarding policy and the workers links may reach.
    public var flowControlSummary: (forwarding: Bool, forwardTo: [String], reachableFromLinks: [Address]) {
        let public_ = registry.withLock { registry in
            Set(registry.workers.values.filter { $0.reach == .links }.map(\.primary))
        }
        return (
            options.forwarding.enabled, options.forwarding.summary(),
            public_.sorted { $0.description < $1.description }
        )
    }

    private func route(_ message: LocalMessage, origin: MessageOrigin, ifFull: FullMailbox = .wait) async throws {
        var message = message
        guard let first = message.onwardRoute.first else {
            count { $0.droppedHeartbeat += 1 }
            throw NodeError.emptyOnwardRoute
        }
        var forwarded = false
        if !first.isLocal {
            if origin != .local {
                guard options.forwarding.enabled else {
                    count { $0.droppedForwardingDisabled += 1 }
                    throw NodeError.forwardingDisabled(first)
                }
                guard options.forwarding.allows(first) else {
                    count { $0.droppedForwardNotAllowed += 1 }
                    noteRefusal("forwarding from \(origin) to \(first) is not allowed (forwarding.allow / --forward-to)")
                    throw NodeError.forwardingNotAllowed(first)
                }
                forwarded = true
            }
            let transport = registry.withLock { $0.transports[first.transportType] }
            guard let transport else {
                count { $0.droppedUnknownAddress += 1 }
                throw NodeError.noTransport(first.transportType)
            }
            let local: Address
            do {
                local = try await transport.resolve(first)
            } catch {
                count { $0.droppedUnreachable += 1 }
                throw error
            }
            message.onwardRoute.replaceFront(with: local)
        }
        guard let destination = message.onwardRoute.first else { throw NodeError.emptyOnwardRoute }
        let entry = registry.withLock { $0.workers[destination] }
        guard let entry else {
            count { $0.droppedUnknownAddress += 1 }
            throw NodeError.unknownAddress(destination)
        }
        if case .link(let link) = origin, !forwarded, !mayReach(entry, at: destination, from: link) {
            count { $0.droppedFlowControl += 1 }
            noteRefusal("a message from \(origin) for \(destination) was refused: that worker is not reachable from links")
            throw NodeError.accessDenied(destination)
        }
        guard entry.accessControl(message) else {
            count { $0.droppedAccessDenied += 1 }
            noteRefusal("access denied: message for \(destination) refused by its access control")
            throw NodeError.accessDenied(destination)
        }
        if entry.reach == .linkSender { registerReplyAddress(of: message, sentThrough: destination) }
        options.observer?(message)
        if case .drop = ifFull {
            guard entry.mailbox.trySend(message) else {
                if entry.mailbox.isClosed {
                    count { $0.droppedWorkerStopped += 1 }
                    throw NodeError.workerStopped(destination)
                }
                count { $0.droppedMailboxFull += 1 }
                throw NodeError.mailboxFull(destination)
            }
            count { $0.delivered += 1 }
            return
        }
        do {
            try await entry.mailbox.send(message)
            count { $0.delivered += 1 }
        } catch {
            count { $0.droppedWorkerStopped += 1 }
            throw error
        }
    }

    /// A message that may go out on the link whose sender is at `link` lets that link's replies reach the address the
    /// message names for them (its return route's first hop), if that is a local worker links may not reach anyway.
    /// Called only once the message has passed flow control and access control: a refused message opens nothing.
    private func registerReplyAddress(of message: LocalMessage, sentThrough link: Address) {
        guard let replyAddress = message.returnRoute.first, replyAddress != link else { return }
        registry.withLock { registry in
            guard let consumer = registry.workers[replyAddress], consumer.reach != .links,
                consumer.reach != .linksAuthenticated,
                registry.consumers[link, default: []].count < Self.maxConsumersPerLink
            else { return }
            registry.consumers[link, default: []].insert(replyAddress)
            registry.consumedLinks[replyAddress, default: []].insert(link)
            if registry.pendingRequests[replyAddress] != nil {
                registry.requestsByLink[link, default: []].insert(replyAddress)
            }
        }
    }

    /// Flow control for a message from the link whose sender is at `link`: public workers, the link's own sender,
    /// and the addresses that sent through that link (their replies).
    private func mayReach(_ entry: Entry, at destination: Address, from link: Address) -> Bool {
        switch entry.reach {
        case .links, .linksAuthenticated: return true
        case .linkSender where entry.addresses.contains(link): return true
        case .local, .linkSender:
            return registry.withLock { $0.consumers[link]?.contains(destination) ?? false }
        }
    }

    /// Refusals are decided by what peers send: warnings at most every 10 s with a count of those in between; the
    /// rest at debug (all are counted).
    private func noteRefusal(_ text: @autoclosure () -> String) {
        if let suppressed = refusalLog.admit() {
            logger.warning("\(text())\(LogRateLimiter.note(suppressed))")
        } else {
            logger.debug("\(text())")
        }
    }

    // MARK: Request/response

    /// Sends `payload` to `route` from a temporary address and waits for the first reply.
    public func request(to route: Route, payload: [UInt8], timeout: Duration) async throws -> LocalMessage {
        let address = Address.random()
        let inbox = ReplyWorker()
        try startWorker(inbox, at: address, options: WorkerOptions(mailboxCapacity: 4))
        registry.withLock { $0.pendingRequests[address] = inbox }
        let result: Result<LocalMessage, any Error>
        do {
            try await send(LocalMessage(onwardRoute: route, returnRoute: [address], payload: payload))
            result = .success(try await inbox.wait(timeout: timeout))
        } catch {
            result = .failure(error)
        }
        finishRequest(at: address)
        return try result.get()
    }

    /// Forgets a finished request's inbox: a synchronous step after the request's suspensions, not a lock in a
    /// `defer` of the async function (the shape Swift 6.3.1 miscompiled with an inlined mutex; see EdgeMutex.withLock).
    private func finishRequest(at address: Address) {
        registry.withLock { registry in
            registry.pendingRequests.removeValue(forKey: address)
            for link in registry.consumedLinks[address] ?? [] { registry.requestsByLink[link]?.remove(address) }
        }
        stopWorkerNoWait(at: address)
    }

    // MARK: Shutdown

    /// Stops every worker (each drains its mailbox) and refuses new ones.
    public func shutdown() async {
        let addresses: [Address] = registry.withLock { registry in
            registry.shuttingDown = true
            return Array(Set(registry.workers.values.map(\.primary)))
        }
        for address in addresses { await stopWorker(at: address) }
    }
}

/// A one-shot inbox used by ``Node/request(to:payload:timeout:)``: the first reply, a timeout or cancellation
/// ends the wait; later replies are ignored. The timeout is a ``OneShotTimer`` cancelled with the wait, so a
/// request leaves nothing behind once it has returned.
final class ReplyWorker: Worker {
    private struct State {
        var result: Result<LocalMessage, any Error>?
        var waiter: CheckedContinuation<LocalMessage, any Error>?
        var timer: OneShotTimer?
    }
    private let state = EdgeMutex(State())

    func handleMessage(_ message: LocalMessage, context: WorkerContext) async throws {
        finish(.success(message))
    }

    /// Ends the wait with `error` (the message could not be delivered), unless it has already ended.
    func fail(_ error: any Error) { finish(.failure(error)) }

    /// Records the outcome once and resumes the waiter, if it is waiting.
    private func finish(_ result: Result<LocalMessage, any Error>) {
        let (waiter, timer) = state.withLock { state -> (CheckedContinuation<LocalMessage, any Error>?, OneShotTimer?) in
            guard state.result == nil else { return (nil, nil) }
            state.result = result
            defer {
                state.waiter = nil
                state.timer = nil
            }
            return (state.waiter, state.timer)
        }
        timer?.cancel()
        waiter?.resume(with: result)
    }

    func wait(timeout: Duration) async throws -> LocalMessage {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<LocalMessage, any Error>) in
                let ready = state.withLock { state -> Result<LocalMessage, any Error>? in
                    if let result = state.result { return result }
                    state.waiter = continuation
                    return nil
                }
                if let ready {
                    continuation.resume(with: ready)
                    return
                }
                let timer = OneShotTimer(after: timeout) { [self] in finish(.failure(NodeError.timeout(timeout))) }
                let armed = state.withLock { state -> Bool in
                    guard state.result == nil else { return false }
                    state.timer = timer
                    return true
                }
                if !armed { timer.cancel() }
            }
        } onCancel: {
            finish(.failure(CancellationError()))
        }
    }
}
