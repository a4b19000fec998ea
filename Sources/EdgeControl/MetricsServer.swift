// A minimal local HTTP endpoint serving Prometheus text format at /metrics (opt-in; bind it to loopback).
import NIOCore
import NIOPosix

/// Serves `GET /metrics` with whatever `render` returns (Prometheus text exposition format 0.0.4).
/// Only what is needed for a scraper: one request per connection, bounded request size, no keep-alive.
public final class MetricsServer: Sendable {
    private let channel: any Channel
    public let boundAddress: SocketAddress

    private init(channel: any Channel, bound: SocketAddress) {
        self.channel = channel
        boundAddress = bound
    }

    public static func start(
        host: String, port: Int, group: any EventLoopGroup, render: @escaping @Sendable () -> String
    ) async throws -> MetricsServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(MetricsHandler(render: render))
                }
            }
            .bind(host: host, port: port).get()
        return MetricsServer(channel: channel, bound: channel.localAddress!)
    }

    public func stop() async { try? await channel.close() }
}

final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let render: @Sendable () -> String
    var request = ByteBuffer()

    init(render: @escaping @Sendable () -> String) { self.render = render }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        request.writeBuffer(&chunk)
        guard request.readableBytes <= 8192 else {
            respond(context, status: "431 Request Header Fields Too Large", body: "")
            return
        }
        guard let text = request.getString(at: request.readerIndex, length: request.readableBytes),
            text.contains("\r\n\r\n") || text.contains("\n\n")
        else { return }
        let firstLine = text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = firstLine.split(separator: " ")
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            respond(context, status: "200 OK", body: render())
        } else {
            respond(context, status: "404 Not Found", body: "see /metrics\n")
        }
    }

    func respond(_ context: ChannelHandlerContext, status: String, body: String) {
        let bodyBytes = Array(body.utf8)
        let head =
            "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(bodyBytes.count)\r\nConnection: close\r\n\r\n"
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + bodyBytes.count)
        buffer.writeString(head)
        buffer.writeBytes(bodyBytes)
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
    }
}

/// Builds Prometheus text: `# HELP`, `# TYPE` and samples, with label values escaped.
public struct PrometheusText {
    public private(set) var text = ""
    public init() {}

    public mutating func metric(
        _ name: String, type: String = "counter", help: String, samples: [(labels: [(String, String)], value: Double)]
    ) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for sample in samples {
            let labels =
                sample.labels.isEmpty
                ? ""
                : "{" + sample.labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
            let value = sample.value == sample.value.rounded() && abs(sample.value) < 1e15 ? String(Int64(sample.value)) : "\(sample.value)"
            text += "\(name)\(labels) \(value)\n"
        }
    }

    public mutating func metric(_ name: String, type: String = "counter", help: String, value: Double) {
        metric(name, type: type, help: help, samples: [([], value)])
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
