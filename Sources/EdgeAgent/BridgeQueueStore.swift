// The agent's bridge store: EdgeQueue's crash-safe store-and-forward queue behind EdgeBridge's store protocol.
import EdgeBridge
import EdgeCLI
import EdgeConfig
import EdgeQueue
import SystemPackage

/// A ``StoreAndForwardQueue`` configured from a bridge's `queue:` settings (docs/configuration.md).
final class BridgeQueueStore: BridgeStore {
    let queue: StoreAndForwardQueue
    let epoch: [UInt8]?

    private init(queue: StoreAndForwardQueue, epoch: [UInt8]) {
        self.queue = queue
        self.epoch = epoch
    }

    static func limits(_ settings: AgentConfig.QueueSettings) -> QueueLimits {
        QueueLimits(
            memoryMessages: settings.memoryMessages, memoryBytes: settings.memoryBytes, diskBytes: settings.diskBytes,
            segmentBytes: max(1 << 20, settings.memoryBytes), maxRecordBytes: BridgeLimits.maxEncoded,
            durability: settings.durability == "always" ? .always : .spill)
    }

    static func open(directory: FilePath, settings: AgentConfig.QueueSettings) throws -> BridgeQueueStore {
        try Support.makeDirectories(directory.removingLastComponent())
        let queue: StoreAndForwardQueue
        do {
            queue = try StoreAndForwardQueue.open(directory: directory, limits: limits(settings))
        } catch {
            throw CommandFailure("bridge queue \(directory): \(error)")
        }
        // After the queue: it creates and checks the directory. A queue from before epochs gets one now.
        do {
            return BridgeQueueStore(queue: queue, epoch: try QueueEpoch.loadOrCreate(in: directory))
        } catch {
            try? queue.close()
            throw CommandFailure("bridge queue \(directory): \(error)")
        }
    }

    func store(_ record: [UInt8]) throws -> (sequence: UInt64, droppedOldest: Int) {
        let result = try queue.append(record)
        return (result.sequence, result.dropped?.count ?? 0)
    }

    func oldest(max: Int) throws -> [(sequence: UInt64, bytes: [UInt8])] {
        try queue.peek(max: max).map { (sequence: $0.sequence, bytes: $0.bytes) }
    }

    func oldest(after sequence: UInt64, max: Int) throws -> [(sequence: UInt64, bytes: [UInt8])] {
        try queue.peek(after: sequence, max: max).map { (sequence: $0.sequence, bytes: $0.bytes) }
    }

    func acknowledge(through sequence: UInt64) throws -> Int { try queue.acknowledge(through: sequence) }

    var pending: Int { queue.depth.messages }
    var pendingBytes: Int { queue.depth.bytes }

    func close() throws { try queue.close() }
}
