// EdgeControl: the node's local control interface — a 0600 Unix socket speaking length-prefixed CBOR requests.
import EdgeWire

/// What the CLI asks a running node, one case per command (docs/control-socket.md).
///
/// Wire form: `array(2) [version = 2, array(1 + n) [command name, field…]]`, fields in the order listed per case;
/// an absent optional is `null`, a duration is whole milliseconds (at most a year). A request of another version is
/// refused with an error response that names both versions.
public enum ControlCommand: Sendable, Equatable {
    case ping
    case status
    case metrics
    /// `to`: a multiaddr; `/secure/api` is appended when it names no secure channel listener.
    case createChannel(to: String, timeout: Duration?)
    case listChannels
    case showChannel(address: String)
    case deleteChannel(address: String)
    /// `raw`: send the text's bytes as they are, not as a BARE string (and show the reply's bytes as text).
    case sendMessage(to: String, message: String, timeout: Duration?, raw: Bool)
    case startPairing(PairingRequest)
    case confirmPairing(channel: String, name: String, attributes: [String: String])
    case cancelPairing(channel: String)
    case listDevices
    case removeDevice(name: String)

    /// The command's name on the wire and in logs.
    public var name: String {
        switch self {
        case .ping: "ping"
        case .status: "status"
        case .metrics: "metrics"
        case .createChannel: "secure-channel/create"
        case .listChannels: "secure-channel/list"
        case .showChannel: "secure-channel/show"
        case .deleteChannel: "secure-channel/delete"
        case .sendMessage: "message/send"
        case .startPairing: "pair/start"
        case .confirmPairing: "pair/confirm"
        case .cancelPairing: "pair/cancel"
        case .listDevices: "devices/list"
        case .removeDevice: "devices/remove"
        }
    }
}

/// `pair/start`: open a secure channel to a device over one of the node's links and show its verification code.
public struct PairingRequest: Sendable, Equatable {
    /// `serial` or `ble`.
    public var transport: String
    /// A serial link name (or `/serial/<name>`), or `<bdaddr>[/random],psm=…`.
    public var target: String
    public var listener: String
    /// BLE link security: `medium`, `high` or `fips`; nil: the link's default.
    public var security: String?
    public var timeout: Duration?

    public init(transport: String, target: String, listener: String = "api", security: String? = nil, timeout: Duration? = nil) {
        self.transport = transport
        self.target = target
        self.listener = listener
        self.security = security
        self.timeout = timeout
    }
}

/// A node's answer to a ``ControlCommand``.
public enum ControlResponse: Sendable, Equatable {
    case ok(ControlReply)
    /// A message for people.
    case error(String)
}

/// What a command returns, typed; the CLI makes the JSON it prints from this (docs/control-socket.md).
public enum ControlReply: Sendable, Equatable {
    case pong
    /// The node's status document: name, listeners, links, channels and every counter by name. It stays a document
    /// (the JSON data model in CBOR) because it gathers what each transport and service reports, and the CLI only
    /// shows it.
    case status(JSON)
    /// Prometheus text exposition.
    case metrics(String)
    case channel(ChannelSummary)
    case channels([ChannelSummary])
    case channelDeleted(address: String)
    case messageReply(String)
    case pairingStarted(PairingStarted)
    case pairingConfirmed(channel: String, device: DeviceSummary)
    case pairingCancelled(channel: String)
    case devices([DeviceSummary])
    case deviceRemoved(DeviceRemoved)

    var name: String {
        switch self {
        case .pong: "pong"
        case .status: "status"
        case .metrics: "metrics"
        case .channel: "channel"
        case .channels: "channels"
        case .channelDeleted: "channel-deleted"
        case .messageReply: "message-reply"
        case .pairingStarted: "pairing-started"
        case .pairingConfirmed: "pairing-confirmed"
        case .pairingCancelled: "pairing-cancelled"
        case .devices: "devices"
        case .deviceRemoved: "device-removed"
        }
    }
}

/// A secure channel as `secure-channel list/show/create` report it.
public struct ChannelSummary: Sendable, Equatable {
    /// `/service/<hex>`: where messages into the channel go.
    public var address: String
    public var encryptor: String
    public var decryptor: String
    /// `initiator` or `responder`.
    public var role: String
    /// The peer's identifier (`I…`).
    public var peer: String
    public var remoteRoute: String
    public var listener: String?
    public var cipher: String
    /// The 6-digit code both ends derive from the handshake hash (`042 917`; docs/pairing.md).
    public var verificationCode: String

    public init(
        address: String, encryptor: String, decryptor: String, role: String, peer: String, remoteRoute: String,
        listener: String?, cipher: String, verificationCode: String
    ) {
        self.address = address
        self.encryptor = encryptor
        self.decryptor = decryptor
        self.role = role
        self.peer = peer
        self.remoteRoute = remoteRoute
        self.listener = listener
        self.cipher = cipher
        self.verificationCode = verificationCode
    }
}

/// `pair/start`'s answer: the pairing channel and the code to compare with the device's.
public struct PairingStarted: Sendable, Equatable {
    public var channel: String
    public var identifier: String
    public var code: String
    public var transport: String
    /// The name the device is already paired under, if it is.
    public var alreadyPairedAs: String?

    public init(channel: String, identifier: String, code: String, transport: String, alreadyPairedAs: String?) {
        self.channel = channel
        self.identifier = identifier
        self.code = code
        self.transport = transport
        self.alreadyPairedAs = alreadyPairedAs
    }
}

/// A paired device.
public struct DeviceSummary: Sendable, Equatable {
    public var name: String
    public var identifier: String
    public var attributes: [String: String]
    /// `serial:<link>` or `ble:<peer>`.
    public var transport: String
    public var linkSecurity: String?
    /// Unix seconds.
    public var pairedAt: UInt64
    /// Its open channels (`/service/<hex>`).
    public var channels: [String]

    public init(
        name: String, identifier: String, attributes: [String: String], transport: String, linkSecurity: String?,
        pairedAt: UInt64, channels: [String]
    ) {
        self.name = name
        self.identifier = identifier
        self.attributes = attributes
        self.transport = transport
        self.linkSecurity = linkSecurity
        self.pairedAt = pairedAt
        self.channels = channels
    }
}

/// `devices/remove`'s answer: the channels with the device were closed before it was sent.
public struct DeviceRemoved: Sendable, Equatable {
    public var name: String
    public var identifier: String
    public var closedChannels: [String]

    public init(name: String, identifier: String, closedChannels: [String]) {
        self.name = name
        self.identifier = identifier
        self.closedChannels = closedChannels
    }
}

public enum ControlLimits {
    /// Largest request or response frame.
    public static let maxFrame = 4 * 1024 * 1024
    /// Longest text field of a request (a message, a multiaddr).
    public static let maxRequestText = 64 * 1024
    /// Most attributes of a pairing, items of a list in a reply, members of a status object.
    public static let maxItems = 1 << 16
    /// Deepest nesting of the status document.
    public static let maxDepth = 16
    /// Longest duration a request may carry: a year, as the CLI's and the configuration's parsers allow.
    public static let maxDurationMilliseconds: UInt64 = 366 * 24 * 3600 * 1000
}
