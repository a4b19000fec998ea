// The board layer for QEMU's mps2-an386 (Cortex-M4): CMSDK APB UARTs and the millisecond clock. A real board
// replaces this file (and startup.c, link.ld) with its own UART driver, clock and memory map: nothing else in the
// firmware touches hardware.
import _Volatile

@_extern(c, "board_milliseconds") func board_milliseconds() -> UInt32
@_extern(c, "board_start_clock") func board_start_clock()
@_extern(c, "board_heap_high_water") func board_heap_high_water() -> UInt
@_extern(c, "board_stack_high_water") func board_stack_high_water() -> UInt
@_extern(c, "board_entropy32") func board_entropy32() -> UInt32

/// A CMSDK APB UART (ARM DDI 0479C §4.3): DATA +0x0, STATE +0x4 (bit 0 TX full, bit 1 RX full), CTRL +0x8
/// (bit 0 TX enable, bit 1 RX enable), BAUDDIV +0x10.
struct CMSDKUART: DevicePort {
    private let data: VolatileMappedRegister<UInt32>
    private let state: VolatileMappedRegister<UInt32>
    private let control: VolatileMappedRegister<UInt32>
    private let baudDivider: VolatileMappedRegister<UInt32>

    init(base: UInt) {
        data = VolatileMappedRegister(unsafeBitPattern: base)
        state = VolatileMappedRegister(unsafeBitPattern: base + 0x4)
        control = VolatileMappedRegister(unsafeBitPattern: base + 0x8)
        baudDivider = VolatileMappedRegister(unsafeBitPattern: base + 0x10)
    }

    /// 115200 baud at the 25 MHz peripheral clock (QEMU ignores the rate but wants a divider ≥ 16).
    func enable() {
        baudDivider.store(217)
        control.store(0x3)
    }

    mutating func readByte() -> UInt8? {
        guard state.load() & 0x2 != 0 else { return nil }
        return UInt8(truncatingIfNeeded: data.load())
    }

    mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) {
        for byte in bytes { put(byte) }
    }

    func put(_ byte: UInt8) {
        while state.load() & 0x1 != 0 {}
        data.store(UInt32(byte))
    }
}

/// UART0 carries the link to the gateway; UART1 is a text console for the test harness and humans.
enum Board {
    static let link = CMSDKUART(base: 0x4000_4000)
    static let console = CMSDKUART(base: 0x4000_5000)

    static func start() {
        link.enable()
        console.enable()
        board_start_clock()
    }

    static var milliseconds: UInt32 { board_milliseconds() }
    static var heapHighWater: UInt { board_heap_high_water() }
    static var stackHighWater: UInt { board_stack_high_water() }
    static var entropy: UInt32 { board_entropy32() }
}
