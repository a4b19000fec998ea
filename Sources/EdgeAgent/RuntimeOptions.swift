// Where `node run` and the agent meet: the transport and listener options both build, with defaults in one place.
import EdgeConfig
import EdgeIdentity
import EdgeSecureChannel
import EdgeTransportTCP
import NIOCore

/// `node run` and the agent both describe the TCP transport and their secure channel listeners as the configuration
/// does (`AgentConfig.TCPSettings`, `AgentConfig.SecureChannelListener`): the agent from its file, `node run` from its
/// flags, whose defaults and `--help` text are those structs' defaults. These turn the settings into the runtime's
/// options, so a default is written once.
package enum RuntimeOptions {
    package static let tcpDefaults = AgentConfig.TCPSettings()
    package static let listenerDefaults = AgentConfig.SecureChannelListener()

    package static func tcp(_ settings: AgentConfig.TCPSettings) -> TCPTransportOptions {
        var options = TCPTransportOptions()
        options.frameTimeout = settings.frameTimeout
        options.frameMinimumRate = settings.frameMinRate
        options.maxConnectionsPerListener = settings.maxConnections
        options.maxConnectionsPerHost = settings.maxConnectionsPerHost
        options.maxOutgoingConnections = settings.maxOutgoing
        options.maxUnfinishedBytesPerListener = settings.maxUnfinishedBytes
        options.maxUnfinishedBytesPerHost = settings.maxUnfinishedBytesPerHost
        options.outgoingIdleTimeout = settings.outgoingIdleTimeout
        return options
    }

    /// How a bound TCP listener is printed (`listening …`) and recorded for `/node/<name>`: `host:port`, an IPv6
    /// address in brackets, with the port the system chose for port 0.
    package static func listenerText(_ address: SocketAddress, host: String, port: Int) -> String {
        let ip = address.ipAddress ?? host
        return "\(ip.contains(":") ? "[\(ip)]" : ip):\(address.port ?? port)"
    }

    /// A secure channel listener's options (the caller adds its live trust provider where it has one).
    package static func listener(
        _ settings: AgentConfig.SecureChannelListener, trust: TrustContext, suite: ChannelSuite
    ) -> SecureChannelOptions {
        SecureChannelOptions(
            trust: trust, suite: suite, handshakeTimeout: settings.handshakeTimeout,
            maxHalfOpenHandshakes: settings.maxHalfOpen, maxHalfOpenHandshakesPerSource: settings.maxHalfOpenPerSource,
            idleTimeout: settings.idleTimeout, maxChannels: settings.maxChannels)
    }
}
