// The queue epoch: random bytes kept in a bridge's queue directory, sent with every envelope (docs/bridge.md).
import EdgeWire
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Why a queue epoch could not be read or made.
public enum QueueEpochError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The `epoch` file exists but does not hold 16 hex digits: it is only ever replaced atomically, so this is
    /// outside interference.
    case corrupt(path: String)
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .corrupt(let path):
            "queue epoch file \(path) is damaged (expected 16 hex digits and a newline); remove it to start a new epoch"
        case .io(let path, let operation, let errno): "cannot \(operation) queue epoch file \(path): \(Errno(rawValue: errno))"
        }
    }
}

/// A bridge queue's epoch: 8 random bytes created with the queue directory and kept in `<queue>/epoch` as 16 hex
/// digits and a newline. A queue that is wiped or replaced starts its sequence numbers again, but with a new epoch,
/// so the ingest service keys what it has seen by (gateway, bridge, epoch) and does not take the new queue's
/// messages for duplicates. The file is written atomically (`.tmp-epoch`, fsync, rename, fsync the directory); the
/// queue removes a leftover `.tmp-*` file when it opens and ignores the `epoch` name.
public enum QueueEpoch {
    public static let byteCount = 8
    public static let fileName = "epoch"

    /// The epoch stored in `directory`, made and stored first if there is none. Call it after the queue has opened
    /// (and so created and checked) the directory.
    public static func loadOrCreate(in directory: FilePath) throws(QueueEpochError) -> [UInt8] {
        let path = directory.appending(fileName)
        if let existing = try load(path) { return existing }
        var generator = SystemRandomNumberGenerator()  // getrandom(2): unique, not secret
        let epoch = (0..<byteCount).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try store(epoch, at: path, directory: directory)
        return epoch
    }

    /// The epoch in `path`, nil when the file does not exist.
    static func load(_ path: FilePath) throws(QueueEpochError) -> [UInt8]? {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec, .noFollow])
        } catch Errno.noSuchFileOrDirectory {
            return nil
        } catch {
            throw .io(path: path.string, operation: "open", errno: code(error))
        }
        defer { try? fd.close() }
        var buffer = [UInt8](repeating: 0, count: 64)  // bounded: a valid file has 17 bytes
        let count: Int
        do {
            count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0, retryOnInterrupt: true) }
        } catch {
            throw .io(path: path.string, operation: "read", errno: code(error))
        }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        guard count == 2 * byteCount + 1, text.hasSuffix("\n"), let bytes = Hex.decode(String(text.dropLast())),
            bytes.count == byteCount
        else { throw .corrupt(path: path.string) }
        return bytes
    }

    static func store(_ epoch: [UInt8], at path: FilePath, directory: FilePath) throws(QueueEpochError) {
        let temporary = directory.appending(".tmp-" + fileName)
        let target = path.string
        func fail(_ operation: String, _ code: Int32) -> QueueEpochError {
            _ = unlink(temporary.string)
            return .io(path: target, operation: operation, errno: code)
        }
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(
                temporary, .writeOnly, options: [.create, .truncate, .closeOnExec, .noFollow],
                permissions: .ownerReadWrite)
        } catch {
            throw fail("create", code(error))
        }
        do {
            _ = try fd.writeAll(Array((Hex.encode(epoch) + "\n").utf8))
        } catch {
            try? fd.close()
            throw fail("write", code(error))
        }
        if fsync(fd.rawValue) != 0 {
            let code = errno
            try? fd.close()
            throw fail("sync", code)
        }
        try? fd.close()
        if rename(temporary.string, target) != 0 { throw fail("rename", errno) }
        // The rename is durable only once the directory is.
        let dirFD = open(directory.string, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw .io(path: target, operation: "sync the directory of", errno: errno) }
        defer { _ = close(dirFD) }
        if fsync(dirFD) != 0 { throw .io(path: target, operation: "sync the directory of", errno: errno) }
    }

    static func code(_ error: any Error) -> Int32 { (error as? Errno)?.rawValue ?? EIO }

    /// The epoch as printed in logs, ingest lines and JetStream message ids: lowercase hex.
    public static func text(_ epoch: [UInt8]?) -> String? { epoch.map { Hex.encode($0) } }
}
