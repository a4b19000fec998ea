// OckamEdgeBench: the benchmark executable behind `make bench` (bench/run.sh drives it; see bench/README.md).
// Each subcommand prints one JSON line per result on stdout; servers first print `listening host:port`.
#if canImport(Glibc)
import Glibc
#endif

let usage = """
    usage: OckamEdgeBench <subcommand> [--option value]…   (one JSON line per result on stdout)

    CPU-only, one thread:
      aead --sizes 64,16384 [--seconds 1]          libsodium AES-256-GCM seal+open (the limit), ChaCha20, Swift wrapper
      channel-crypto --sizes 16384 [--seconds 1]   channel encode+encrypt+decrypt+decode, no routing and no I/O
      handshakes [--seconds 2 | --count N]         full XX handshakes, identities and attestations verified
      handshake-primitives [--seconds 0.3]         the same primitive operations timed alone: the bound
      serial-overhead [--sizes 16,64,200,1024]     exact bytes on a serial link per payload (encoded, not timed)

    Through nodes (TCP on 127.0.0.1):
      serve [--listen 127.0.0.1:0]                 node with secure listener 'api' and worker 'sink'
      send --connect H:P [--via G:P] [--plain] --size N [--seconds S | --count N] [--system label]
      latency --connect H:P [--via G:P] [--plain] --rate R --seconds S [--size 64]
      channels-open --connect H:P --counts 1,100,1000 [--node-pid PID] [--concurrency 8]

    Over a serial port (suite 6; SPEC as `node run --serial`, e.g. DIR/ttyA,mode=listen,name=bench):
      serve --serial SPEC                          the same node and sink, reached over the port (`64#<name>`)
      send --serial SPEC [--plain] --size N …      the same sender; adds the bytes its messages took on the wire

    Over BLE, inside the virtual rig (suite 7; specs as `node run --ble-listen/--ble-connect`):
      serve --ble-listen hci0,psm=0x81,mtu=672     the same node and sink, reached over an L2CAP LE CoC link
      send --ble-connect ADDR,psm=0x81,adapter=hci1,mtu=672 [--plain] --size N …
                                                   the same sender (route `4#ADDR,psm=0x81 → api`); adds the SDUs
                                                   and bytes of the handshake and of each message on the link
      raw-sink --l2cap-listen SPEC, raw-source --l2cap-connect SPEC …
                                                   the raw stream over a bare L2CAP channel (the BLE limit)

    Plain sockets (peers):
      raw-sink [--listen 127.0.0.1:0]
      raw-source --connect H:P --size N [--seconds S | --count N] [--system label]
      raw-sink --tty PATH, raw-source --tty PATH …  the same stream over a tty in raw mode (the serial limit)

    Every subcommand ends itself after --max-seconds (default 900).
    """

/// A synchronous `main` that parks the main thread in `pause()` while the async subcommands run on the global
/// executor (detached: `main` is on the main actor, whose thread is parked). (An `async` main parks it in libdispatch's `dispatch_main`, whose `sigsuspend` on a read-only mask
/// crashes valgrind 3.19, and the profile in bench/profile.py runs this binary under callgrind.)
@main
struct OckamEdgeBenchMain {
    static func main() {
        let argv = Array(CommandLine.arguments.dropFirst())
        if argv.isEmpty || argv[0] == "--help" || argv[0] == "help" {
            print(usage)
            exit(argv.isEmpty ? 2 : 0)
        }
        let arguments: Arguments
        do {
            arguments = try Arguments(argv)
            armLifetimeLimit(seconds: try arguments.int("max-seconds", default: 900))
        } catch {
            fail(error)
        }
        bootstrapQuietLogging()
        do {
            switch arguments.command {
            case "aead": try CPUSuites.aead(arguments)
            case "channel-crypto": try CPUSuites.channelCrypto(arguments)
            case "handshakes": try CPUSuites.handshakes(arguments)
            case "handshake-primitives": try CPUSuites.handshakePrimitives(arguments)
            case "serial-overhead": try SerialSuites.overhead(arguments)
            case "raw-sink" where arguments.string("l2cap-listen") == nil: try RawTCP.sink(arguments)
            case "raw-source" where arguments.string("l2cap-connect") == nil: try RawTCP.source(arguments)
            case "serve", "send", "latency", "channels-open", "raw-sink", "raw-source":
                Task.detached {
                    do {
                        switch arguments.command {
                        case "raw-sink": try await BLESuites.rawSink(arguments, spec: arguments.string("l2cap-listen")!)
                        case "raw-source": try await BLESuites.rawSource(arguments, spec: arguments.string("l2cap-connect")!)
                        case "serve": try await NodeSuites.serve(arguments)
                        case "send": try await NodeSuites.send(arguments)
                        case "latency": try await NodeSuites.latency(arguments)
                        default: try await NodeSuites.channelsOpen(arguments)
                        }
                    } catch {
                        fail(error)
                    }
                    exit(0)
                }
                while true { pause() }
            default: throw BenchFailure("unknown subcommand '\(arguments.command)'\n\(usage)")
            }
        } catch {
            fail(error)
        }
        exit(0)
    }

    static func fail(_ error: any Error) -> Never {
        var text = "OckamEdgeBench: \(error)\n"
        _ = text.withUTF8 { write(2, $0.baseAddress, $0.count) }
        exit(1)
    }
}
