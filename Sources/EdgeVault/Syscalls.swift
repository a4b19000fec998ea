// EdgeVault/Syscalls: the one POSIX read the vault needs beyond EdgePOSIX: a whole file into a buffer that is zeroed
// whenever it is given up, because key files are secrets.
import EdgeCrypto
import EdgePOSIX
import SystemPackage

extension FileDescriptor {
    /// Reads from the current position until end of file, at most `limit + 1` bytes, into a new buffer.
    ///
    /// The buffer starts at `sizeHint + 1` bytes (capped at `limit + 1`) and grows if the file is longer; every
    /// buffer given up while growing is zeroed before it is freed.
    ///
    /// - Returns: the buffer and the number of bytes read; a count of `limit + 1` means the file is larger than
    ///   `limit`. The caller owns the buffer: it must zero it if it can hold secrets, then deallocate it.
    func readUpTo(limit: Int, sizeHint: Int = 0) throws(Errno) -> (buffer: UnsafeMutableRawBufferPointer, count: Int) {
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(max(sizeHint, 0), limit) + 1, alignment: 16)
        var count = 0
        do throws(Errno) {
            while true {
                if count == buffer.count {
                    guard buffer.count < limit + 1 else { break }
                    let larger = UnsafeMutableRawBufferPointer.allocate(
                        byteCount: min(buffer.count * 2, limit + 1), alignment: 16
                    )
                    larger.copyMemory(from: UnsafeRawBufferPointer(buffer))
                    Memory.zero(buffer)
                    buffer.deallocate()
                    buffer = larger
                }
                let got = try readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[count...]))
                if got == 0 { break }
                count += got
            }
        } catch {
            Memory.zero(buffer)
            buffer.deallocate()
            throw error
        }
        return (buffer, count)
    }
}
