// The control socket server (in `node run`) and client (in the CLI): u32-BE-length-prefixed CBOR frames.
import EdgeNIO
import EdgeSync
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

public enum ControlError: Error, Hashable, Sendable, CustomStringConvertible {
    case frameTooLarge(Int)
    case notRunning(String)
    case socketInUse(String)
    case unsafeSocketPath(String)
    /// The socket could not be made 0600 (path, errno).
    case socketNotPrivate(String, Int32)
    case noResponse

    public var description: String {
        switch self {
        case .frameTooLarge(let n): return "control frame of \(n) bytes exceeds the limit"
        case .notRunning(let path): return "no node is listening on \(path) (is it running?)"
        case .socketInUse(let path): return "another node is already serving \(path)"
        case .unsafeSocketPath(let path): return "\(path) exists and is not a socket; refusing to replace it"
        case .socketNotPrivate(let path, let code): return "cannot make \(path) 0600: \(String(cString: strerror(code)))"
        case .noResponse: return "the node closed the control connection without answering"
        }
    }
}

/// `u32 BE length ‖ body` frames, bounded by ``ControlLimits/maxFrame``.
struct ControlFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= ControlLimits.maxFrame else { throw ControlError.frameTooLarge(Int(length)) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }
    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}

struct ControlFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = ByteBuffer
    func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        var data = data
        out.writeInteger(UInt32(data.readableBytes))
        out.writeBuffer(&data)
    }
}

/// Serves control requests on a Unix socket created with mode 0600 (owner only).
public final class ControlServer: Sendable {
    public typealias Handler = @Sendable (ControlCommand) async -> ControlResponse

    public let path: String
    private let channel: any Channel
    private let task: EdgeMutex<Task<Void, Never>?>

    private init(path: String, channel: any Channel) {
        self.path = path
        self.channel = channel
        task = EdgeMutex(nil)
    }

    /// Binds `path` (removing a stale socket left by a dead node), restricts it to the owner, and serves requests.
    public static func start(
        path: String, group: any EventLoopGroup, logger: Logger, handler: @escaping Handler
    ) async throws -> ControlServer {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw ControlError.unsafeSocketPath(path) }
            if (try? await ControlClient.send(.ping, path: path, group: group)) != nil {
                throw ControlError.socketInUse(path)
            }
            unlink(path)
        }
        // The socket lives in a directory only this user can enter (the node directory, 0700, checked before), so its
        // own mode until the chmod below protects nothing; the process umask is left alone: changing it would reach
        // every thread creating files meanwhile (a vault, a queue, another runtime in the same process).
        let accepted = AcceptedChannels<ByteBuffer, ByteBuffer>()
        let server = try await ServerBootstrap(group: group)
            .bind(unixDomainSocketPath: path) { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(ControlFrameDecoder()))
                    try child.pipeline.syncOperations.addHandler(MessageToByteHandler(ControlFrameEncoder()))
                    return try accepted.wrap(child)
                }
            }
        guard chmod(path, 0o600) == 0 else {
            let code = errno
            try? await server.channel.close()
            unlink(path)
            throw ControlError.socketNotPrivate(path, code)
        }
        let control = ControlServer(path: path, channel: server.channel)
        let task = Task<Void, Never> {
            _ = try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        accepted.claim(connection)
                        group.addTask {
                            try? await connection.executeThenClose { requests, responses in
                                for try await frame in requests {
                                    let response: ControlResponse
                                    do {
                                        let request = try ControlCommand(decoding: Array(frame.readableBytesView))
                                        response = await handler(request)
                                    } catch {
                                        logger.debug("bad control request: \(error)")
                                        response = .error("bad request: \(error)")
                                    }
                                    try await responses.write(ByteBuffer(bytes: response.encode()))
                                }
                            }
                        }
                    }
                }
            }
            await accepted.closeUnclaimed()
        }
        control.task.withLock { $0 = task }
        return control
    }

    public func shutdown() async {
        try? await channel.close()
        await task.withLock { $0 }?.value
        unlink(path)
    }
}

public enum ControlClient {
    /// Sends one request and waits for the response.
    public static func send(
        _ request: ControlCommand, path: String, group: any EventLoopGroup, timeout: Duration = .seconds(30)
    ) async throws -> ControlResponse {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: group)
                .connect(unixDomainSocketPath: path) { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(ControlFrameDecoder()))
                        try ch.pipeline.syncOperations.addHandler(MessageToByteHandler(ControlFrameEncoder()))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch)
                    }
                }
        } catch {
            throw ControlError.notRunning(path)
        }
        return try await withThrowingTaskGroup(of: ControlResponse.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(bytes: request.encode()))
                    for try await frame in inbound {
                        return try ControlResponse(decoding: Array(frame.readableBytesView))
                    }
                    throw ControlError.noResponse
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                try? await channel.channel.close()
                throw ControlError.noResponse
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}
