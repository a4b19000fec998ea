// The node directory: `<state>/nodes/<name>` records (listener address, pid) and control sockets, checked like the vault.
import EdgeCLI
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Node names → listener addresses, kept as files in `<state>/nodes/<name>`.
package struct NodeDirectory {
    package let stateDirectory: FilePath
    package var directory: FilePath { stateDirectory.appending("nodes") }

    package init(stateDirectory: FilePath) { self.stateDirectory = stateDirectory }

    package static func validate(name: String) throws(CommandFailure) {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
                || c == 0x2e
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed, name != ".", name != ".." else {
            throw CommandFailure("invalid node name '\(name)' (letters, digits, '-', '_', '.'; at most 64)", status: 2)
        }
    }

    package func record(name: String, address: String) throws(CommandFailure) {
        try Support.makeDirectories(directory)
        try checkSafe()
        try Support.writeFileAtomically(directory.appending(name), "\(address)\n\(getpid())\n")
    }

    /// Refuses a state directory that another user could tamper with, as the vault does for its own: whoever can
    /// write the state directory or `nodes/` can replace node records (where `/node/<name>` routes go) and control
    /// sockets (what `--from <name>` talks to, and so what the CLI prints as a node's answer). Both must be
    /// directories owned by the user running ockam-edge and not writable by group or others; `nodes/` must not be a
    /// symbolic link. Missing ones are fine (they are created 0700).
    package func checkSafe() throws(CommandFailure) {
        let user = geteuid()
        for (path, followLink) in [(stateDirectory, true), (directory, false)] {
            var info = stat()
            let result = followLink ? stat(path.string, &info) : lstat(path.string, &info)
            guard result == 0 else {
                if errno == ENOENT { continue }
                throw CommandFailure("cannot examine the state directory \(path): \(Errno(rawValue: errno))")
            }
            let type = info.st_mode & S_IFMT
            if type == S_IFLNK {
                throw CommandFailure("\(path) is a symbolic link; the node directory must be a real directory (remove it)")
            }
            guard type == S_IFDIR else { throw CommandFailure("\(path) is not a directory") }
            guard info.st_uid == user else {
                throw CommandFailure(
                    "\(path) is owned by uid \(info.st_uid), not by the user running ockam-edge (uid \(user)): another "
                        + "user could replace node records and control sockets (use your own --state-dir, or chown it)")
            }
            guard info.st_mode & 0o022 == 0 else {
                throw CommandFailure(
                    "\(path) is writable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))): they could "
                        + "replace node records and control sockets (chmod go-w '\(path)')")
            }
        }
    }

    /// Refuses a control socket that is not a socket owned by the user running ockam-edge (checked before connecting).
    package func checkSocket(name: String) throws(CommandFailure) {
        let path = socketPath(name: name)
        var info = stat()
        guard lstat(path.string, &info) == 0 else { return }  // missing: the connect says "not running"
        guard info.st_mode & S_IFMT == S_IFSOCK else { throw CommandFailure("\(path) is not a socket") }
        guard info.st_uid == geteuid() else {
            throw CommandFailure(
                "the control socket \(path) is owned by uid \(info.st_uid), not by you (uid \(geteuid())): refusing to talk to it")
        }
    }

    package func remove(name: String) { _ = unlink(directory.appending(name).string) }

    /// Refuses to start a second node under a name a running node has: it would overwrite that node's record and
    /// replace its control socket. Running means the recorded process exists and its control socket accepts a
    /// connection (a record left by a crash, whose pid may have been reused, does not count).
    package func refuseIfRunning(name: String) throws(CommandFailure) {
        guard let (address, pid) = liveRecord(name: name), Self.accepts(socketPath(name: name)) else {
            return
        }
        throw CommandFailure(
            "a node named '\(name)' is already running (pid \(pid), listening \(address)): stop it first, or choose "
                + "another name")
    }

    /// The record of `name` (listener address, pid) if its process still exists.
    private func liveRecord(name: String) -> (address: String, pid: Int32)? {
        guard let text = Support.readFile(directory.appending(name)) else { return nil }
        let lines = text.split(separator: "\n")
        guard lines.count >= 2, let pid = Int32(lines[1]) else { return nil }
        if kill(pid, 0) != 0 && errno == ESRCH { return nil }
        return (String(lines[0]), pid)
    }

    /// Whether a Unix socket at `path` accepts a connection.
    private static func accepts(_ path: FilePath) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.string.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }

    /// The listener address of a running node, or nil if unknown or its process is gone.
    package func lookup(name: String) -> String? {
        guard (try? NodeDirectory.validate(name: name)) != nil, (try? checkSafe()) != nil else { return nil }
        return liveRecord(name: name)?.address
    }
}

extension NodeDirectory {
    package func socketPath(name: String) -> FilePath { directory.appending("\(name).sock") }
}
