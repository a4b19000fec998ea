"""Fleet helpers for the reliability suite (python3 standard library only): a nats-server cluster on loopback, a
minimal NATS protocol client for reading a JetStream stream back, and a TCP proxy that can be cut, restored and made
to delay every chunk (a slow uplink).
"""

import base64
import calendar
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from edge import Fail, _child_setup, check, eventually, free_port

# ---------------------------------------------------------------------------------------------------------------
# A nats-server cluster


class NatsServer:
    """One `nats-server -js` of a cluster: its client, route and monitoring ports and store directory stay the same
    across kill9()/start(), so a restarted server rejoins with its data."""

    def __init__(self, ctx, name, port, cluster_port, monitor_port, routes, cluster_name):
        self.ctx = ctx
        self.name = name
        self.port = port
        self.cluster_port = cluster_port
        self.monitor_port = monitor_port
        self.store = ctx.path("nats-" + name)
        self.args = [
            "nats-server", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor_port), "-n", name,
            "--cluster", f"nats://127.0.0.1:{cluster_port}", "--cluster_name", cluster_name, "--routes", routes,
            "-js", "-sd", self.store]
        self.proc = None
        self.log = None

    def start(self):
        self.log = self.ctx.log_file(self.name)
        env = dict(os.environ, GOMAXPROCS="1")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
                                     preexec_fn=_child_setup)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        if self.log:
            self.log.close()

    kill = kill9

    def monitor(self, path):
        """The JSON document of monitoring endpoint `path` (e.g. `/jsz?streams=true`)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=5) as response:
            return json.loads(response.read())

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"


class NatsCluster:
    """`size` nats-servers on loopback with JetStream, each with GOMAXPROCS=1 and its own store directory."""

    def __init__(self, ctx, size=3, cluster_name="fleet"):
        self.ctx = ctx
        ports = [(free_port(), free_port(), free_port()) for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{c}" for _, c, _ in ports)
        self.servers = [NatsServer(ctx, f"n{i + 1}", p, c, m, routes, cluster_name)
                        for i, (p, c, m) in enumerate(ports)]
        ctx.cleanups.append(self.stop)

    def start(self):
        if not shutil.which("nats-server"):
            raise Fail("no nats-server")
        for server in self.servers:
            server.start()
        self.wait_meta_leader()

    def stop(self):
        for server in self.servers:
            server.kill9()

    @property
    def urls(self):
        return [s.url for s in self.servers]

    def server(self, name):
        return next(s for s in self.servers if s.name == name)

    def wait_meta_leader(self, timeout=60):
        """Polls the live servers' /jsz until every one names the same JetStream meta leader; returns its name."""
        def agreed():
            leaders = {s.monitor("/jsz").get("meta_cluster", {}).get("leader") for s in self.servers if s.alive()}
            return leaders.pop() if len(leaders) == 1 and None not in leaders and "" not in leaders else None
        return eventually(agreed, timeout, "JetStream meta leader elected")

    def stream_leader(self, stream):
        """The stream's cluster leader as a live server reports it (None while there is none)."""
        for server in self.servers:
            if not server.alive():
                continue
            try:
                document = server.monitor("/jsz?accounts=true&streams=true")
            except OSError:
                continue
            for account in document.get("account_details", []) or []:
                for detail in account.get("stream_detail", []) or []:
                    if detail.get("name") == stream:
                        leader = (detail.get("cluster") or {}).get("leader")
                        if leader:
                            return leader
        return None


# ---------------------------------------------------------------------------------------------------------------
# A minimal NATS client: CONNECT, PING/PONG, SUB, PUB, and JetStream API requests over a plain socket


class NatsClient:
    def __init__(self, urls, timeout=10):
        self.sock = None
        errors = []
        for url in urls:
            host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
            try:
                self.sock = socket.create_connection((host, int(port)), timeout=timeout)
                break
            except OSError as error:
                errors.append(f"{url}: {error}")
        check(self.sock is not None, f"cannot connect to NATS: {errors}")
        self.sock.settimeout(timeout)
        self.buffer = b""
        self.sid = 0
        info = self._line()
        check(info.startswith(b"INFO "), f"NATS greeting {info[:60]!r}")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,'
                          b'"lang":"python-reliability","version":"1"}\r\nPING\r\n')
        self._expect_pong()
        self.inbox = "_INBOX.reliability." + os.urandom(6).hex()
        self.sock.sendall(f"SUB {self.inbox}.* 1\r\n".encode())
        self.counter = 0

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise Fail("NATS server closed the connection")
        self.buffer += chunk

    def _line(self):
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buffer) < n + 2:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n + 2:]
        return data

    def _expect_pong(self):
        while True:
            line = self._line()
            if line == b"PONG":
                return
            if line.startswith(b"-ERR"):
                raise Fail(f"NATS: {line.decode(errors='replace')}")
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")

    def _next_message(self):
        """(subject, headers bytes or None, payload) of the next MSG/HMSG, answering PINGs on the way."""
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            if line in (b"PONG", b"+OK") or line.startswith(b"INFO "):
                continue
            if line.startswith(b"-ERR"):
                raise Fail(f"NATS: {line.decode(errors='replace')}")
            parts = line.split()
            if parts[0] == b"MSG":
                n = int(parts[-1])
                return parts[1].decode(), None, self._exact(n)
            if parts[0] == b"HMSG":
                header_len, total = int(parts[-2]), int(parts[-1])
                data = self._exact(total)
                return parts[1].decode(), data[:header_len], data[header_len:]
            raise Fail(f"NATS: unexpected {line[:80]!r}")

    def requests(self, pairs):
        """Sends every (subject, JSON body) request at once and returns their decoded replies in order (a reply that
        is a no-responders status becomes {"error": "no responders"})."""
        first = self.counter
        out = b"".join(
            f"PUB {subject} {self.inbox}.{first + i} {len(body)}\r\n".encode() + body + b"\r\n"
            for i, (subject, body) in enumerate((s, json.dumps(b).encode()) for s, b in pairs))
        self.counter += len(pairs)
        self.sock.sendall(out)
        replies = {}
        while len(replies) < len(pairs):
            subject, headers, payload = self._next_message()
            index = int(subject.rsplit(".", 1)[1])
            if not first <= index < first + len(pairs):
                continue  # a late reply to an earlier batch
            if headers is not None and b" 503" in headers.split(b"\r\n", 1)[0]:
                replies[index] = {"error": "no responders"}
            else:
                replies[index] = json.loads(payload) if payload else {}
        return [replies[first + i] for i in range(len(pairs))]

    def request(self, subject, body):
        return self.requests([(subject, body)])[0]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_headers(raw):
    """NATS/1.0 header block → {name: value} (the first value of each name)."""
    lines = raw.decode(errors="replace").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.setdefault(name.strip(), value.strip())
    return headers


def rfc3339_ms(text):
    """`2026-12-08T01:41:22.684886885Z` → milliseconds since the Unix epoch (float)."""
    main, _, rest = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    fraction = float("0." + rest) if rest else 0.0
    return (seconds + fraction) * 1000.0


def read_stream(urls, stream, batch=200, timeout=120):
    """Every message of `stream`, in stream order: a list of {seq, subject, headers, data, time_ms}, read with
    `$JS.API.STREAM.MSG.GET` requests (polled again, on a new connection if need be, while the cluster settles)."""
    client = []

    def requests(pairs):
        """The replies, or None if one is a JetStream error; a broken connection is dropped (the poll retries)."""
        try:
            if not client:
                client.append(NatsClient(urls))
            replies = client[0].requests(pairs)
        except (Fail, OSError) as error:
            if client:
                client.pop().close()
            raise ConnectionError(str(error))  # not Fail: `eventually` tries again
        return None if any("error" in r for r in replies) else replies

    try:
        (info,) = eventually(lambda: requests([(f"$JS.API.STREAM.INFO.{stream}", {})]), timeout,
                             f"stream {stream}: its info")
        state = info["state"]
        first, last = state.get("first_seq", 0), state.get("last_seq", 0)
        messages = []
        for seq in range(first, last + 1 if first else 0, batch):
            numbers = range(seq, min(last, seq + batch - 1) + 1)
            replies = eventually(lambda: requests([(f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": n}) for n in numbers]),
                                 timeout, f"stream {stream}: messages {numbers[0]}-{numbers[-1]}")
            for reply in replies:
                message = reply["message"]
                messages.append({
                    "seq": message["seq"], "subject": message["subject"],
                    "headers": parse_headers(base64.b64decode(message["hdrs"])) if message.get("hdrs") else {},
                    "data": base64.b64decode(message.get("data") or b""), "time_ms": rfc3339_ms(message["time"])})
        check(len(messages) == state.get("messages", len(messages)),
              f"stream {stream}: read {len(messages)} messages, its state says {state.get('messages')}")
        return messages
    finally:
        if client:
            client.pop().close()


# ---------------------------------------------------------------------------------------------------------------
# A TCP proxy: cut() closes the listener and every connection, restore() listens again on the same port; `delay`
# seconds are added to every chunk in each direction (order kept), so the round trip grows by 2 × delay.


class Proxy:
    def __init__(self, target_port, delay=0.0, listen=True):
        self.port = free_port()
        self.target = target_port
        self.delay = delay
        self.listener = None
        self.sockets = set()
        self.lock = threading.Lock()
        self.connections = 0
        if listen:
            self.restore()

    def restore(self):
        with self.lock:
            check(self.listener is None, "proxy already listening")
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self):
        with self.lock:
            listener, self.listener = self.listener, None
            sockets, self.sockets = self.sockets, set()
        if listener:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    stop = cut

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.sockets.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                chunks = queue.Queue()
                threading.Thread(target=self._read, args=(a, b, chunks), daemon=True).start()
                threading.Thread(target=self._write, args=(b, a, chunks), daemon=True).start()

    def _read(self, source, sink, chunks):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                chunks.put((time.monotonic() + self.delay, data))
        except OSError:
            pass
        chunks.put((time.monotonic() + self.delay, b""))

    def _write(self, sink, source, chunks):
        try:
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the simulated link delay of this chunk
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (sink, source):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
