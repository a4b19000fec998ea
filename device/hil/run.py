#!/usr/bin/env python3
"""Hardware-in-the-loop test of the device kit, with the hardware emulated.

    emulated MCU (QEMU mps2-an386, the kit's Embedded Swift firmware)
      └─ UART0 ─ pty ─ gateway agent (ockam-edge, serial link in listen mode, bridge "sensors")
                          └─ TCP + secure channel ─ cloud agent (ockam-edge, ingest service → JSON lines)

The firmware takes N readings ("reading 0" … "reading N-1") and sends each to the gateway's bridge until the bridge
answers `ok <sequence>`. Midway the gateway is stopped (SIGTERM) and started again, and later killed (SIGKILL) and
started again. The test passes when every reading is in
the cloud's JSON lines, in order, the only repeats being the at-least-once resends the bridge's rules allow (a
reading whose answer was lost with the old gateway, stored again right after itself), the device re-established its
link session, and its heap did not grow after start-up. Any failure prints the logs.

Usage: device/hil/run.py --bin path/to/ockam-edge [--readings 40] [--keep]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEVICE = os.path.dirname(HERE)
RELIABILITY = os.path.join(os.path.dirname(DEVICE), "scripts", "reliability")


OUTAGE_SECONDS = 2.0


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(predicate, timeout, what, interval=0.1):
    """Polls `predicate` until it is true or `timeout` seconds passed (then fails naming `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")


class Process:
    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "ab")
        self.log.write(f"\n=== start: {' '.join(argv)}\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.flush()

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        self.log.flush()

    def tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as error:
            return f"(no log: {error})"


def agent_config(name, state, vault, listen, body):
    return f"""node:
  name: {name}
  state_dir: {state}
  log_level: info
vault:
  path: {vault}
transports:
  tcp:
    listen: {listen}
""" + body


def ingested(path):
    """The cloud's JSON lines, as (text, sequence) pairs."""
    rows = []
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    rows.append((row.get("text"), row.get("sequence")))
    except FileNotFoundError:
        pass
    return rows


def wire_bytes_per_reading(payload):
    """Bytes on the line for one reading and for the bridge's answer, from the framing of docs/serial-framing.md
    (the reliability suite's Python encoder, independent of the firmware's)."""
    sys.path.insert(0, RELIABILITY)
    from edge import serial_frame  # noqa: E402

    def cbor_bytes(b):
        assert len(b) < 256
        return (bytes([0x40 | len(b)]) if len(b) < 24 else bytes([0x58, len(b)])) + b

    def local(name):
        return b"\x82\x00" + cbor_bytes(name)

    reading = b"\x83" + b"\x81" + local(b"sensors") + b"\x81" + local(b"r0000000c") + cbor_bytes(payload)
    answer_payload = bytes([len(b"ok 12")]) + b"ok 12"
    answer = (b"\x83" + b"\x81" + local(b"r0000000c") + b"\x82" + local(b"0" * 32) + local(b"sensors")
              + cbor_bytes(answer_payload))
    # ockam-edge and the kit write a 0x00 before every frame as well as after it: both are counted.
    return len(reading), len(serial_frame(0x03, reading)), len(answer), len(serial_frame(0x03, answer))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="the ockam-edge binary (gateway and cloud)")
    parser.add_argument("--readings", type=int, default=40)
    parser.add_argument("--qemu", default=shutil.which("qemu-system-arm") or "qemu-system-arm")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="device-hil-")
    processes = []
    ok = False
    try:
        n = args.readings
        fw = os.path.join(workdir, "fw")
        build = subprocess.run([os.path.join(DEVICE, "build-firmware.sh"), fw, str(n)], capture_output=True, text=True)
        if build.returncode != 0:
            raise Failure(f"firmware build failed:\n{build.stdout}{build.stderr}")
        print(build.stdout.strip())

        # The cloud: an ingest service writing JSON lines.
        cloud_port = free_port()
        output = os.path.join(workdir, "ingest.jsonl")
        cloud_yaml = os.path.join(workdir, "cloud.yaml")
        with open(cloud_yaml, "w") as f:
            f.write(agent_config("cloud", os.path.join(workdir, "state-cloud"), os.path.join(workdir, "vault-cloud"),
                                 f"127.0.0.1:{cloud_port}", f"""ingest:
  - address: ingest
    output: {output}
"""))
        cloud = Process("cloud", [args.bin, "agent", "--config", cloud_yaml], workdir)
        processes.append(cloud)

        def cloud_listening():
            if not cloud.alive():
                raise Failure("the cloud agent exited")
            try:
                socket.create_connection(("127.0.0.1", cloud_port), 0.5).close()
                return True
            except OSError:
                return False

        eventually(cloud_listening, 20, "the cloud agent's TCP listener")

        # The emulated MCU: UART0 on a pty (the gateway opens it), UART1 (console) to a file.
        console = os.path.join(workdir, "console.log")
        open(console, "w").close()
        qemu = Process("qemu", [args.qemu, "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                                "-serial", "pty", "-serial", f"file:{console}",
                                "-kernel", os.path.join(fw, "firmware.elf")], workdir)
        processes.append(qemu)

        def pty_path():
            if not qemu.alive():
                raise Failure("QEMU exited")
            match = re.search(r"char device redirected to (/dev/pts/\d+) \(label serial0\)", qemu.tail(20))
            return match.group(1) if match else None

        pty = eventually(pty_path, 10, "QEMU's pty")

        def console_text():
            with open(console, errors="replace") as f:
                return f.read()

        # The gateway: the serial link listens on the pty; the bridge delivers to the cloud's ingest.
        gw_yaml = os.path.join(workdir, "gateway.yaml")
        with open(gw_yaml, "w") as f:
            f.write(agent_config("gateway", os.path.join(workdir, "state-gw"), os.path.join(workdir, "vault-gw"),
                                 "127.0.0.1:0", f"""  serial:
    - path: {pty}
      mode: listen
      name: sensor1
bridges:
  - name: sensors
    to: /ip4/127.0.0.1/tcp/{cloud_port}/secure/api/service/ingest
    ack_timeout: 3s
    reply: true
    queue:
      memory_messages: 64
      durability: always
"""))
        gateway = Process("gateway", [args.bin, "agent", "--config", gw_yaml], workdir)
        processes.append(gateway)

        eventually(lambda: "link up" in console_text(), 30, "the device's link session")
        # Two gateway restarts mid-run, a clean stop (SIGTERM) at a third of the readings and a crash (SIGKILL) at two
        # thirds: the device must re-handshake and carry on each time.
        restarts = []
        for fraction, how in ((1, "SIGTERM"), (2, "SIGKILL")):
            mark = max(1, n * fraction // 3)
            eventually(lambda: len(ingested(output)) >= mark, 60, f"{mark} readings at the cloud")
            if how == "SIGTERM":
                gateway.stop()
            else:
                gateway.kill()
            if gateway.alive():
                raise Failure("the gateway did not stop")
            stored = len(ingested(output))
            if stored >= n:
                raise Failure("every reading was stored before a restart: the test proves nothing (slow firmware?)")
            restarts.append(f"{how} after {stored} stored")
            # An outage of a fixed length (the scenario, not a wait for anything): the device keeps taking readings,
            # its buffer fills, and the reading on the line when the gateway went away is never answered.
            time.sleep(OUTAGE_SECONDS)
            gateway = Process("gateway", [args.bin, "agent", "--config", gw_yaml], workdir)
            processes.append(gateway)

        eventually(lambda: "done " in console_text(), 90, "the firmware to have every reading acknowledged")
        expected = [f"reading {i}" for i in range(n)]
        eventually(lambda: set(expected) <= {t for t, _ in ingested(output)}, 30, "every reading at the cloud")

        # Checks.
        rows = ingested(output)
        texts = [t for t, _ in rows]
        first_seen = []
        for t in texts:
            if t not in first_seen:
                first_seen.append(t)
        if first_seen != expected:
            raise Failure(f"readings out of order or foreign: {first_seen}")
        repeats = [texts[i] for i in range(1, len(texts)) if texts[i] in texts[:i]]
        for i in range(1, len(texts)):
            if texts[i] in texts[:i] and texts[i] != texts[i - 1]:
                raise Failure(f"'{texts[i]}' stored again but not right after itself: {texts}")
        link_ups = console_text().count("link up")
        # Only a reading on the line when the old gateway went away can be stored twice (stored, its `ok` lost with
        # the process): at most one per restart with one reading in flight. The emulated line loses nothing else.
        if len(repeats) > len(restarts):
            raise Failure(f"{len(repeats)} readings stored twice ({repeats}); at most {len(restarts)} expected")
        if link_ups < 1 + len(restarts):
            raise Failure(f"the device's link came up {link_ups} time(s); expected again after each restart")
        done = re.search(r"done (.*)", console_text()).group(1)
        fields = dict(kv.split("=") for kv in done.split())
        if int(fields["resent"]) < len(restarts):
            raise Failure(f"no reading was sent again after the outage: {done}")
        if fields["heap_start"] != fields["heap_high_water"]:
            raise Failure(f"the firmware allocated after start-up: {done}")
        message, frame, answer, answer_frame = wire_bytes_per_reading(b"reading 12")
        elapsed = time.monotonic() - started
        print(f"device HIL: {n} readings stored in order (gateway restarts: {', '.join(restarts)}; "
              f"{len(repeats)} stored again after a restart: {repeats or 'none'}); device {done}; link ups {link_ups}")
        print(f"line bytes per reading ('reading 12'): routing message {message} B, DATA frame on the wire {frame} B "
              f"(incl. both 0x00); the bridge's answer: {answer} B message, {answer_frame} B on the wire")
        print(f"device HIL passed in {elapsed:.1f} s")
        ok = True
    except Failure as failure:
        print(f"DEVICE HIL FAILED: {failure}", file=sys.stderr)
    except Exception as error:  # a bug in this driver must fail loudly too, with the logs
        import traceback
        traceback.print_exc()
        print(f"DEVICE HIL FAILED: {error!r}", file=sys.stderr)
    finally:
        for process in reversed(processes):
            process.stop()
        if not ok:
            path = os.path.join(workdir, "console.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print(f"--- firmware console (UART1):\n{f.read()[-4000:]}", file=sys.stderr)
            seen = set()
            for process in processes:
                if process.log_path in seen:
                    continue
                seen.add(process.log_path)
                print(f"--- {process.name} log ({process.log_path}):\n{process.tail(60)}", file=sys.stderr)
            output = os.path.join(workdir, "ingest.jsonl")
            print(f"--- cloud JSON lines: {ingested(output)}", file=sys.stderr)
            print(f"work directory kept: {workdir}", file=sys.stderr)
        elif not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory: {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
