"""Process, wire and pty helpers for the reliability suite (python3 standard library only).

Everything here drives the real `ockam-edge` binary as separate processes and talks to it the way a peer would:
the Ockam TCP transport (version byte, u32 big-endian frames of CBOR routing messages, docs/routing.md), the
control socket (u32 length-prefixed CBOR, docs/control-socket.md) and serial lines (a pty null modem).
"""

import ctypes
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import tty

# ---------------------------------------------------------------------------------------------------------------
# Errors and small utilities


class Fail(Exception):
    """A scenario's assertion failed; the message says why."""


def check(condition, message):
    if not condition:
        raise Fail(message)


def eventually(predicate, timeout, what, interval=0.1):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` seconds pass (Fail)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except Fail:
            raise
        except Exception as error:  # a transient error (e.g. the control socket not up yet) counts as "not yet"
            last = None
            if time.monotonic() >= deadline:
                raise Fail(f"{what}: not within {timeout:.0f} s (last error: {error})")
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Fail(f"no VmRSS for pid {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


# ---------------------------------------------------------------------------------------------------------------
# Minimal CBOR (the subset the wire formats use: unsigned ints, byte and text strings, arrays, maps)


def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes([major << 5 | 26]) + struct.pack(">I", n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)


def cbor(value):
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value)
    if isinstance(value, (bytes, bytearray)):
        return _head(2, len(value)) + bytes(value)
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in sorted(value.items()))
    raise TypeError(type(value))


def cbor_decode(data, i=0):
    """Returns (value, next index)."""
    initial = data[i]
    major, info = initial >> 5, initial & 31
    i += 1
    if info < 24:
        n = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        n = int.from_bytes(data[i:i + size], "big")
        i += size
    else:
        raise ValueError(f"unsupported CBOR head {initial:#x}")
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major == 7 and info in (20, 21, 22):
        return {20: False, 21: True, 22: None}[info], i
    if major == 2:
        return bytes(data[i:i + n]), i + n
    if major == 3:
        return bytes(data[i:i + n]).decode(), i + n
    if major == 4:
        items = []
        for _ in range(n):
            item, i = cbor_decode(data, i)
            items.append(item)
        return items, i
    if major == 5:
        items = {}
        for _ in range(n):
            key, i = cbor_decode(data, i)
            items[key], i = cbor_decode(data, i)
        return items, i
    raise ValueError(f"unsupported CBOR major type {major}")


# ---------------------------------------------------------------------------------------------------------------
# Ockam TCP transport (docs/routing.md): version byte 0x01, then u32 BE length ‖ CBOR [onward, return, payload]


def local(name):
    return [0, name.encode() if isinstance(name, str) else name]


def routing_message(onward, return_route, payload):
    return cbor([onward, return_route, payload])


def tcp_frame(body):
    return struct.pack(">I", len(body)) + body


class RawOckamClient:
    """A raw TCP peer: sends the version byte and frames; a reader thread counts (and keeps) frames it receives."""

    def __init__(self, port, keep=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"\x01")
        self.frames = 0
        self.kept = []
        self.keep = keep
        self.closed_by_peer = False
        self.version_ok = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        buffer = b""
        try:
            self.sock.settimeout(None)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                if self.version_ok is None and buffer:
                    self.version_ok = buffer[0] == 1
                    buffer = buffer[1:]
                while len(buffer) >= 4:
                    (n,) = struct.unpack(">I", buffer[:4])
                    if len(buffer) < 4 + n:
                        break
                    with self._lock:
                        self.frames += 1
                        if self.keep:
                            self.kept.append(buffer[4:4 + n])
                    buffer = buffer[4 + n:]
        except OSError:
            pass
        self.closed_by_peer = True

    def send_message(self, onward, return_route, payload):
        self.sock.sendall(tcp_frame(routing_message(onward, return_route, payload)))

    def frames_received(self):
        with self._lock:
            return self.frames

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def handshake_message1():
    """Noise XX message 1 (`-> e`): a 32-byte ephemeral public key, empty payload (docs/secure-channel.md)."""
    return os.urandom(32)


# ---------------------------------------------------------------------------------------------------------------
# Control socket client (docs/control-socket.md)


class Control:
    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)

    def _recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise Fail("control socket closed by the node")
            data += chunk
        return data

    # Control protocol version 2: typed commands with fixed fields (docs/control-socket.md). `call` keeps the
    # scenarios' keyword style and returns the JSON view the CLI prints.
    FIELDS = {
        "ping": [], "status": [], "metrics": [], "secure-channel/list": [], "devices/list": [],
        "secure-channel/create": ["to", "timeout"], "secure-channel/show": ["address"],
        "secure-channel/delete": ["address"], "message/send": ["to", "message", "timeout", "raw"],
        "pair/cancel": ["channel"], "devices/remove": ["name"],
    }
    CHANNEL = ["address", "encryptor", "decryptor", "role", "peer", "remote_route", "listener", "cipher",
               "verification_code"]

    @staticmethod
    def milliseconds(text):
        """A duration as the CLI writes it (`10s`, `500ms`, `2m`, `1h`, a bare number of seconds) in whole
        milliseconds, capped at the largest CBOR unsigned integer (the node refuses anything over a year)."""
        number, unit = text, 1000
        for suffix, scale in (("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000)):
            if text.endswith(suffix):
                number, unit = text[: -len(suffix)], scale
                break
        value = int(number) * unit if number.isdigit() else int(float(number) * unit)
        return min(value, (1 << 64) - 1)

    def call(self, command, **arguments):
        """Returns (ok, body); `body` is the reply's JSON view (as the CLI prints it) when ok, the message if not."""
        fields = []
        for name in self.FIELDS[command]:
            value = arguments.get(name)
            if name == "timeout":
                value = None if value is None else self.milliseconds(str(value))
            elif name == "raw":
                value = value in (True, "true")
            fields.append(value)
        body = cbor([2, [command] + fields])
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        (n,) = struct.unpack(">I", self._recv_exact(4))
        (status, reply), _ = cbor_decode(self._recv_exact(n))
        if status != 0:
            return False, reply
        kind, values = reply[0], reply[1:]
        if kind == "status":
            return True, values[0]
        if kind == "channel":
            return True, dict(zip(self.CHANNEL, values[0]))
        if kind == "channels":
            return True, [dict(zip(self.CHANNEL, c)) for c in values[0]]
        if kind == "message-reply":
            return True, {"reply": values[0]}
        if kind == "channel-deleted":
            return True, {"deleted": values[0]}
        return True, values[0] if len(values) == 1 else values

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------------------------------------------
# Processes


_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # Unblock every signal (a parent may have blocked SIGTERM, as `swift test` does) and die with the runner.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Context:
    """A scenario's scratch directory and every process it started (all killed at the end)."""

    def __init__(self, root, name, binary):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.state = self.path("state")
        self.binary = binary
        self.nodes = []
        self.cleanups = []
        self._logs = 0

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def log_file(self, name):
        self._logs += 1
        return open(self.path(f"{self._logs:03d}-{name}.log"), "ab")

    def cli(self, *args, timeout=60):
        """Runs `ockam-edge args…` to completion; returns (status, stdout, stderr)."""
        try:
            done = subprocess.run(
                [self.binary, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                preexec_fn=_child_setup)
        except subprocess.TimeoutExpired:
            raise Fail(f"ockam-edge {' '.join(args)} did not finish within {timeout} s")
        return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")

    def node(self, name, *extra, port=0, vault=None, log_level=None):
        node = Node(self, name, list(extra), port=port, vault=vault, log_level=log_level)
        self.nodes.append(node)
        return node

    def agent(self, name, config, state=None):
        """`ockam-edge agent` with `config` (YAML text; `node.name` must be `name`)."""
        agent = Agent(self, name, config, state or self.state)
        self.nodes.append(agent)
        return agent

    def close(self):
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception:
                pass
        for node in self.nodes:
            node.kill()


class Node:
    """An `ockam-edge node run` process; its first stdout line gives the bound address."""

    def __init__(self, ctx, name, extra, port=0, vault=None, log_level=None):
        self.vault = vault or ctx.path("vault-" + name)
        level = log_level or os.environ.get("RELIABILITY_LOG_LEVEL", "warning")
        self._start(ctx, name, [
            ctx.binary, "node", "run", "--name", name, "--tcp-listen", f"127.0.0.1:{port}", "--state-dir", ctx.state,
            "--vault", self.vault, "--log-level", level, *extra])

    def _start(self, ctx, name, args):
        """Starts `args` and waits for the `listening host:port` line."""
        self.ctx = ctx
        self.name = name
        self.log = ctx.log_file(name)
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, preexec_fn=_child_setup)
        self.pid = self.proc.pid
        line = b""
        deadline = time.monotonic() + 60
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                byte = os.read(self.proc.stdout.fileno(), 1)
                if not byte:
                    break
                line += byte
        text = line.decode(errors="replace").strip()
        if not text.startswith("listening "):
            self.kill()
            raise Fail(f"node {name} did not start ('{text}'; log {self.log.name})")
        self.address = text[len("listening "):]
        self.port = int(self.address.rsplit(":", 1)[1])
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        try:
            while self.proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    @property
    def socket_path(self):
        return os.path.join(self.ctx.state, "nodes", self.name + ".sock")

    def alive(self):
        return self.proc.poll() is None

    def control(self, timeout=30):
        return Control(self.socket_path, timeout=timeout)

    def call(self, command, _timeout=30, **arguments):
        control = self.control(_timeout)
        try:
            return control.call(command, **arguments)
        finally:
            control.close()

    def status(self):
        ok, body = self.call("status")
        check(ok, f"status of {self.name} failed: {body}")
        return body

    def rss(self):
        return rss_kib(self.pid)

    def fds(self):
        return fd_count(self.pid)

    def kill9(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, grace=15):
        """SIGTERM, SIGKILL after `grace` s; returns the exit status."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.hang_info = self._threads()  # where it is stuck, for the report
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def _threads(self):
        """Thread names and kernel wait channels of the process (what a hung node is waiting on)."""
        found = []
        try:
            for tid in sorted(os.listdir(f"/proc/{self.pid}/task")):
                base = f"/proc/{self.pid}/task/{tid}"
                with open(base + "/comm") as f, open(base + "/wchan") as g, open(base + "/status") as h:
                    masks = dict(l.split(":", 1) for l in h if l.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn")))
                    masks = {k: v.strip() for k, v in masks.items()}
                    found.append(f"{f.read().strip()}:{g.read().strip()}:blk={masks.get('SigBlk')},"
                                 f"ign={masks.get('SigIgn')},pnd={masks.get('SigPnd')}/{masks.get('ShdPnd')}")
        except OSError as error:
            found.append(str(error))
        return " ".join(found)

    def kill(self):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()

    def log_size(self):
        """(lines, bytes) the node has logged so far."""
        with open(self.log.name, "rb") as f:
            data = f.read()
        return data.count(b"\n"), len(data)

    def log_tail(self, lines=5):
        try:
            with open(self.log.name, errors="replace") as f:
                return " | ".join(l.strip() for l in f.readlines()[-lines:])
        except OSError:
            return ""


class Agent(Node):
    """An `ockam-edge agent --config …` process (same control socket and status as a node)."""

    def __init__(self, ctx, name, config, state):
        path = ctx.path(f"agent-{name}.yaml")
        with open(path, "w") as f:
            f.write(config)
        self.state = state
        self._start(ctx, name, [ctx.binary, "agent", "--config", path])

    @property
    def socket_path(self):
        return os.path.join(self.state, "nodes", self.name + ".sock")


# ---------------------------------------------------------------------------------------------------------------
# Serial link framing (docs/serial-framing.md): COBS(type ‖ body ‖ CRC-32C little-endian) between 0x00 bytes


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def cobs(data):
    out, block = bytearray(), bytearray()
    for byte in data:
        if byte == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(byte)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    return bytes(out + bytes([len(block) + 1]) + block)


def serial_frame(kind, body):
    decoded = bytes([kind]) + body
    return b"\x00" + cobs(decoded + struct.pack("<I", crc32c(decoded))) + b"\x00"


def serial_hello(nonce, max_frame=16384, keepalive_ms=0):
    """A HELLO (type 0x01) starting a session with `nonce` (§5.1: version 1, flags 0, peer_nonce 0)."""
    return serial_frame(0x01, struct.pack("<BBIIII", 1, 0, max_frame, nonce, 0, keepalive_ms))


# ---------------------------------------------------------------------------------------------------------------
# A null-modem cable between two ptys, run by a thread of this process


class NullModem:
    """`<dir>/ttyA` and `<dir>/ttyB` are symlinks to two pty slaves whose masters a pump thread cross-connects.

    unplug(side) closes that side's pty (the agent's port hangs up, the symlink dangles, like a USB unplug);
    replug(side) makes a new pty and re-points the symlink atomically (as udev re-points a by-id name);
    inject(side, bytes) writes bytes toward the agent on `side` (line noise).
    """

    A, B = 0, 1

    def __init__(self, directory):
        self.directory = directory
        self._lock = threading.Lock()
        self._pairs = [None, None]
        self._pending = [bytearray(), bytearray()]
        self._commands = []
        self._stopped = False
        self.copied = [0, 0]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        for side in (self.A, self.B):
            self._plug(side)
        self._thread = threading.Thread(target=self._pump, name="null-modem", daemon=True)
        self._thread.start()

    def path(self, side):
        return os.path.join(self.directory, "ttyA" if side == self.A else "ttyB")

    def _plug(self, side):
        master, slave = os.openpty()  # non-inheritable (PEP 446): the agents never hold our ends
        tty.setraw(slave)
        os.set_blocking(master, False)
        temporary = self.path(side) + ".new"
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        os.symlink(os.ttyname(slave), temporary)
        os.rename(temporary, self.path(side))
        self._pairs[side] = (master, slave)

    def _unplug(self, side):
        pair = self._pairs[side]
        self._pairs[side] = None
        self._pending[side].clear()
        if pair:
            os.close(pair[0])
            os.close(pair[1])

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _run(self, function):
        done = threading.Event()
        errors = []

        def command():
            try:
                function()
            except Exception as error:
                errors.append(error)
            done.set()

        with self._lock:
            self._commands.append(command)
        self._wake()
        check(done.wait(10), "null modem: command not run")
        if errors:
            raise errors[0]

    def unplug(self, side):
        self._run(lambda: self._unplug(side))

    def replug(self, side):
        self._run(lambda: self._plug(side))

    def inject(self, side, data):
        with self._lock:
            self._pending[side] += data
        self._wake()

    def _pump(self):
        while True:
            with self._lock:
                commands, self._commands = self._commands, []
                if self._stopped:
                    break
            for command in commands:
                command()
            masters = [(side, pair[0]) for side, pair in enumerate(self._pairs) if pair]
            with self._lock:
                writers = [fd for side, fd in masters if self._pending[side]]
            readable, writable, _ = select.select([self._wake_r] + [fd for _, fd in masters], writers, [], 1.0)
            if self._wake_r in readable:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            for side, fd in masters:
                if fd in readable:
                    try:
                        data = os.read(fd, 65536)
                    except (BlockingIOError, OSError):
                        continue
                    other = 1 - side
                    with self._lock:
                        if self._pairs[other] and len(self._pending[other]) < (1 << 20):
                            self._pending[other] += data
                            self.copied[side] += len(data)
                if fd in writable:
                    with self._lock:
                        data = bytes(self._pending[side])
                    try:
                        n = os.write(fd, data)
                    except (BlockingIOError, OSError):
                        continue
                    with self._lock:
                        del self._pending[side][:n]
        for side in (self.A, self.B):
            self._unplug(side)

    def stop(self):
        with self._lock:
            self._stopped = True
        self._wake()
        self._thread.join(10)


def garbage(rng, size):
    """Line noise: random bytes, zeros included (so some of it looks like frame delimiters)."""
    return bytes(rng.getrandbits(8) for _ in range(size))
