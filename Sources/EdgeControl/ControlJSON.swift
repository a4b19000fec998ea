// The JSON view of typed control replies: what the CLI prints (`--json`) and what `status` embeds for channels.
import EdgeWire

extension ControlReply {
    /// The reply as the CLI shows it with `--json` (docs/control-socket.md lists each shape).
    public var json: JSON {
        switch self {
        case .pong: .string("pong")
        case .status(let document): document
        case .metrics(let text): .string(text)
        case .channel(let channel): channel.json
        case .channels(let channels): .array(channels.map(\.json))
        case .channelDeleted(let address): .object([("deleted", .string(address))])
        case .messageReply(let text): .object([("reply", .string(text))])
        case .pairingStarted(let started): started.json
        case .pairingConfirmed(let channel, let device):
            .object(device.members + [("channel", .string(channel))])
        case .pairingCancelled(let channel): .object([("cancelled", .string(channel))])
        case .devices(let devices): .array(devices.map(\.json))
        case .deviceRemoved(let removed):
            .object([
                ("removed", .string(removed.name)), ("identifier", .string(removed.identifier)),
                ("closed_channels", .array(removed.closedChannels.map { .string($0) })),
            ])
        }
    }
}

extension ChannelSummary {
    public var json: JSON {
        .object([
            ("address", .string(address)), ("encryptor", .string(encryptor)), ("decryptor", .string(decryptor)),
            ("role", .string(role)), ("peer", .string(peer)), ("remote_route", .string(remoteRoute)),
            ("listener", listener.map { .string($0) } ?? .null), ("cipher", .string(cipher)),
            ("verification_code", .string(verificationCode)),
        ])
    }
}

extension PairingStarted {
    public var json: JSON {
        .object([
            ("channel", .string(channel)), ("identifier", .string(identifier)), ("code", .string(code)),
            ("transport", .string(transport)), ("already_paired_as", alreadyPairedAs.map { .string($0) } ?? .null),
        ])
    }
}

extension DeviceSummary {
    var members: [(String, JSON)] {
        [
            ("name", .string(name)), ("identifier", .string(identifier)),
            ("attributes", .object(attributes.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("transport", .string(transport)), ("link_security", linkSecurity.map { .string($0) } ?? .null),
            ("paired_at", .uint(pairedAt)), ("channels", .array(channels.map { .string($0) })),
        ]
    }

    public var json: JSON { .object(members) }
}
