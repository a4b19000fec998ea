#!/usr/bin/env python3
"""Runs a test command under a time limit, so a hung test fails CI quickly and says where it hung.

    scripts/test-watchdog.py [--limit SECONDS] -- swift test --skip-build

Output passes through line by line. If the command outlives the limit, the watchdog prints the Swift Testing
tests that started and never finished, the stack of every thread of each test process (gdb, when installed),
then kills the whole process group and exits 124. Otherwise it exits with the command's status.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

STARTED = re.compile(r"◇ Test (.+?) started\.")
FINISHED = re.compile(r"[✔✘↷] Test (.+?)(?: with \d+ test cases?)? (?:passed|failed|skipped)")
CASE = re.compile(r"Test case passing ")
SUMMARY = re.compile(r"Test run with \d+ tests?.* (?:passed|failed)")
# After Swift Testing's summary line the runner should exit at once; if it does not, something (an orphaned child
# holding the output pipe) keeps `swift test` waiting.
EXIT_GRACE = 120


def descendants(root):
    """PIDs of every process below `root` (from /proc; no psutil on a fresh machine)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError):
            continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def holders(inode):
    """PIDs of every process with the pipe `inode` open (orphans reparented to init included)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") == f"pipe:[{inode}]":
                    out.append(int(entry))
                    break
        except OSError:
            continue
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=float, default=float(os.environ.get("TEST_TIME_LIMIT", "1500")))
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    running = {}
    summary = []
    lock = threading.Lock()

    def pump():
        for raw in process.stdout:
            line = raw.decode(errors="replace")
            sys.stdout.write(line)
            sys.stdout.flush()
            if CASE.search(line):
                continue
            with lock:
                if SUMMARY.search(line):
                    summary.append(time.monotonic())
                if m := STARTED.search(line):
                    running[m.group(1)] = time.monotonic()
                elif m := FINISHED.search(line):
                    running.pop(m.group(1), None)

    pipe_inode = os.fstat(process.stdout.fileno()).st_ino
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    start = time.monotonic()
    while True:
        try:
            status = process.wait(timeout=1)
            reader.join(timeout=10)
            return status
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        with lock:
            lingering = bool(summary) and now - summary[0] > EXIT_GRACE
        if now - start > args.limit or lingering:
            break

    if lingering:
        print(f"\n== test watchdog: the test run finished but the runner has not exited after {EXIT_GRACE} s ==")
    else:
        print(f"\n== test watchdog: still running after {args.limit:.0f} s ==", flush=True)
    with lock:
        for name, since in sorted(running.items(), key=lambda item: item[1]):
            print(f"   unfinished: {name} (running {now - since:.0f} s)")
        if not running:
            print("   no Swift Testing test is unfinished: the hang is outside a test (XCTest or process exit)")
    gdb = shutil.which("gdb")
    for pid in [process.pid] + descendants(process.pid):
        line = command_line(pid)
        if "xctest" not in line and "PackageTests" not in line:
            continue
        print(f"== stacks of {pid}: {line}", flush=True)
        if gdb:
            subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "set pagination off",
                            "-ex", "thread apply all bt 30"], stdout=sys.stdout, stderr=subprocess.STDOUT,
                           timeout=120, check=False)
        else:
            print("   (gdb not installed: no stacks)")
    me = os.getpid()
    stragglers = [pid for pid in holders(pipe_inode) if pid != me and pid != process.pid]
    for pid in stragglers:
        print(f"   holds the test output open: {pid}: {command_line(pid)[:200]}")
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in stragglers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    return 124


if __name__ == "__main__":
    sys.exit(main())
