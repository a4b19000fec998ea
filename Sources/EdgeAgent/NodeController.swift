// The control-socket handler of a running node (`status`, `secure-channel/*`, `message/send`; docs/control-socket.md).
import EdgeCLI
import EdgeConfig
import EdgeControl
import EdgeIdentity
import EdgeIdentityStore
import EdgeNode
import EdgeRouting
import EdgeSecureChannel
import EdgeTransportBLE
import EdgeTransportSerial
import EdgeTransportTCP
import EdgeVault
import EdgeWire
import Logging
import NIOCore
import NIOPosix
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif


/// Answers control-socket requests for a running node (see docs/control-socket.md).
package struct NodeController: Sendable {
    let name: String
    let node: Node
    let tcp: TCPTransport
    let channels: SecureChannels
    let options: SecureChannelOptions
    let listen: String
    let directory: NodeDirectory
    /// More fields for `status` (device links, bridges, queues).
    var statusExtras: @Sendable () -> [(String, JSON)] = { [] }
    /// Pairing and paired devices (docs/pairing.md); nil where the node cannot pair.
    var pairing: PairingService? = nil
    /// The node's serial ports, shown by `status` (nil: none).
    var serial: SerialTransport? = nil
    /// Secure channel listener names whose half-open handshakes `status` shows.
    var listeners: [String] = []

    static func json(_ port: SerialPortStatus) -> JSON {
        let c = port.counters
        return .object([
            ("name", .string(port.name)), ("path", .string(port.configuration.path.string)),
            ("phase", .string(port.phase.rawValue)), ("sender", port.senderAddress.map { .string($0.description) } ?? .null),
            ("last_error", port.lastError.map { .string($0) } ?? .null),
            (
                "counters",
                .object([
                    ("frames_in", .uint(c.framesIn)), ("frames_out", .uint(c.framesOut)), ("bytes_in", .uint(c.bytesIn)),
                    ("bytes_out", .uint(c.bytesOut)), ("messages_in", .uint(c.messagesIn)),
                    ("messages_out", .uint(c.messagesOut)), ("rejected_too_large", .uint(c.rejectedTooLarge)),
                    ("rejected_over_limit", .uint(c.rejectedOverLimit)),
                    ("link_ups", .uint(c.linkUps)), ("link_downs", .uint(c.linkDowns)),
                    ("hello_retries", .uint(c.helloRetries)), ("opens", .uint(c.opens)),
                    ("open_failures", .uint(c.openFailures)), ("dropped_total", .uint(c.droppedTotal)),
                    ("dropped", .object(SerialDropReason.allCases.map { ($0.rawValue, .uint(c.dropped($0))) })),
                ])
            ),
        ])
    }

    /// `status --json`'s `flow_control`: whether and where links' and channels' messages may be forwarded, and which
    /// workers plain links may reach (docs/routing.md "Flow control").
    var flowControlJSON: JSON {
        let summary = node.flowControlSummary
        return .object([
            ("forwarding", .bool(summary.forwarding)),
            ("forward_to", .array(summary.forwardTo.map { .string($0) })),
            ("reachable_from_links", .array(summary.reachableFromLinks.map { .string($0.description) })),
        ])
    }

    static func summary(_ info: SecureChannelInfo) -> ChannelSummary {
        ChannelSummary(
            address: "/service/\(info.encryptor.valueString)", encryptor: info.encryptor.description,
            decryptor: info.decryptor.description, role: info.role.rawValue, peer: info.peer.description,
            remoteRoute: info.remoteRoute.description, listener: info.listener, cipher: info.suite.rawValue,
            verificationCode: info.verificationCode.description)
    }

    @Sendable package func handle(_ command: ControlCommand) async -> ControlResponse {
        do {
            return .ok(try await dispatch(command))
        } catch {
            return .error("\(error)")
        }
    }

    func channelAddress(_ text: String) throws -> Address {
        var text = text
        guard !text.isEmpty else { throw CommandFailure("missing channel address") }
        if text.hasPrefix("/service/") { text = String(text.dropFirst("/service/".count)) }
        if text.hasPrefix("0#") { text = String(text.dropFirst(2)) }
        return .local(text)
    }

    var status: JSON {
        let counters = node.counters
        let sc = channels.counters
        let tcpCounters = tcp.counters
        return JSON.object([
            ("name", .string(name)), ("identifier", .string(channels.local.identity.identifier.description)),
            ("tcp_listener", .string(listen)),
            ("workers", .array(node.workerAddresses.map { .string($0.description) })),
            (
                "tcp_connections",
                .array(
                    tcp.connections.map {
                        .object([
                            ("peer", .string($0.peer)), ("sender", .string($0.senderAddress.description)),
                            ("outgoing", .bool($0.outgoing)),
                        ])
                    })
            ),
            ("secure_channels", .array(channels.channels.map { Self.summary($0).json })),
            ("flow_control", flowControlJSON),
        ] + statusExtras() + [
            (
                "half_open_handshakes",
                .object(listeners.map { ($0, .uint(UInt64(channels.halfOpenHandshakes(listener: $0)))) })
            ),
            ("serial_ports", .array((serial?.ports ?? []).map(Self.json))),
            ("counters", CounterRegistry.statusJSON(CounterSources(node: counters, tcp: tcpCounters, channels: sc))),
        ])
    }

    func dispatch(_ command: ControlCommand) async throws -> ControlReply {
        switch command {
        case .ping:
            return .pong
        case .status:
            return .status(status)
        case .metrics:
            throw CommandFailure("this node serves no metrics")
        case .createChannel(let to, let timeout):
            var segments = try Multiaddr(parsing: to).routeSegments(resolveNode: { directory.lookup(name: $0) })
            if !segments.contains(where: { if case .secureChannel = $0 { return true } else { return false } }) {
                segments.append(.secureChannel(listener: "api"))  // `--to /ip4/…/tcp/…` means its `api` listener
            }
            var options = self.options
            if let timeout { options.handshakeTimeout = timeout }
            let (_, opened) = try await channels.route(for: segments, options: options)
            guard let channel = opened.last else { throw CommandFailure("no secure channel in \(to)") }
            return .channel(Self.summary(channel))
        case .listChannels:
            return .channels(channels.channels.map(Self.summary))
        case .showChannel(let text):
            let address = try channelAddress(text)
            guard let info = channels.channel(address) else { throw CommandFailure("no secure channel \(address)") }
            return .channel(Self.summary(info))
        case .deleteChannel(let text):
            let address = try channelAddress(text)
            guard channels.channel(address) != nil else { throw CommandFailure("no secure channel \(address)") }
            await channels.close(address)
            return .channelDeleted(address: "/service/\(address.valueString)")
        case .sendMessage(let to, let text, let timeout, let raw):
            let segments = try Multiaddr(parsing: to).routeSegments(resolveNode: { directory.lookup(name: $0) })
            let (route, opened) = try await channels.route(for: segments, options: options)
            // Channels opened for this one message are closed after it (their addresses are never returned, so
            // nobody can use them again): otherwise every `message send --from … /secure/…` leaves a channel, its
            // workers and keys behind on both nodes, and channels to peers that went away are never reclaimed.
            let reply: LocalMessage
            do {
                reply = try await channels.request(
                    to: route, payload: raw ? Array(text.utf8) : BARE.encodeString(text), timeout: timeout ?? .seconds(10),
                    through: opened)
            } catch {
                for channel in opened.reversed() { await channels.close(channel.encryptor) }
                if case SecureChannelError.closedBeforeReply(let peer, let reason) = error, reason.hasPrefix("closed by peer") {
                    throw CommandFailure(
                        "\(peer) closed the secure channel right after the handshake: its trust policy refused this node's "
                            + "identity (\(channels.local.identity.identifier))")
                }
                throw error
            }
            for channel in opened.reversed() { await channels.close(channel.encryptor) }
            return .messageReply((!raw ? try? BARE.decodeString(reply.payload) : nil) ?? String(decoding: reply.payload, as: UTF8.self))
        case .startPairing, .confirmPairing, .cancelPairing, .listDevices, .removeDevice:
            guard let pairing else { throw CommandFailure("this node cannot pair devices") }
            return try await pairing.answer(command, options: options)
        }
    }
}
