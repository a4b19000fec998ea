#!/usr/bin/env python3
"""Profiles suite 1 with callgrind and counts the libsodium calls of a handshake (python3 standard library only).

`perf stat -e instructions` reports <not supported> on this kind of VM (no hardware counters), so
the profile is valgrind --tool=callgrind on a short run:

  receiver   `OckamEdgeBench serve` under callgrind; a native sender pushes N × 16 KiB through a secure channel
  sender     `OckamEdgeBench send` under callgrind against a native receiver
  handshake  `OckamEdgeBench handshakes --count N` for two N; the difference of the call counts of the libsodium entry
             points, divided by the difference of N, is the measured number of operations per handshake (checks the
             count documented in bench/README.md)

Callgrind counts instructions in user space only (no kernel time, no cache or AES-NI latency): it ranks where the code
spends instructions, it does not time them. Writes bench/results/profile.json and profile-*.txt.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (shares process handling, pinning and paths)

RESULTS = harness.RESULTS
MESSAGES = int(os.environ.get("PROFILE_MESSAGES", "3000"))
VALGRIND = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no"]


def demangle(names):
    if not names:
        return {}
    swift = os.environ.get("SWIFT", "swift")
    try:
        out = subprocess.run([swift, "demangle", "--simplified"], input="\n".join(names), capture_output=True, text=True,
                             timeout=60).stdout.splitlines()
        if len(out) == len(names):
            return dict(zip(names, out))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {n: n for n in names}


def parse_callgrind(path):
    """Exclusive instructions per function, incoming call counts, and the inclusive cost of each caller → callee."""
    exclusive, calls, edges = {}, {}, {}
    summary = None
    current, callee, pending_call = None, None, False
    obj_of = {}
    current_obj, callee_obj = "", ""
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("ob="):
                current_obj = line[3:].strip()
            elif line.startswith("fn="):
                current = line[3:].strip()
                obj_of.setdefault(current, os.path.basename(current_obj))
            elif line.startswith("cob="):
                callee_obj = line[4:].strip()
            elif line.startswith("cfn="):
                callee = line[4:].strip()
                obj_of.setdefault(callee, os.path.basename(callee_obj or current_obj))
            elif line.startswith("calls="):
                calls[callee] = calls.get(callee, 0) + int(line[6:].split()[0])
                pending_call = True
                callee_obj = ""  # a cob= line only holds for its own call
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) >= 2 and current is not None:
                    cost = int(parts[1])
                    if pending_call:
                        edges[(current, callee)] = edges.get((current, callee), 0) + cost
                        pending_call = False
                    else:
                        exclusive[current] = exclusive.get(current, 0) + cost
            elif line.startswith("summary:"):
                summary = int(line.split()[1])
    total = summary if summary else sum(exclusive.values())
    return {"total": total, "exclusive": exclusive, "calls": calls, "edges": edges, "objects": obj_of}


def callers(profile, callee_pattern, count=8):
    """Who calls the functions matching `callee_pattern`, by the instructions spent in those calls."""
    rx = re.compile(callee_pattern)
    by_caller = {}
    for (caller, callee), cost in profile["edges"].items():
        if rx.search(callee) and not rx.search(caller):
            by_caller[caller] = by_caller.get(caller, 0) + cost
    names = sorted(by_caller, key=by_caller.get, reverse=True)[:count]
    pretty = demangle(names)
    total = profile["total"] or 1
    return [{"caller": pretty.get(n, n)[:200], "pct": round(100 * by_caller[n] / total, 2)} for n in names]


def top(profile, count=20):
    names = sorted(profile["exclusive"], key=profile["exclusive"].get, reverse=True)[:count]
    pretty = demangle(names)
    total = profile["total"] or 1
    return [{"function": pretty.get(n, n)[:160], "object": profile["objects"].get(n, ""),
             "exclusive_pct": round(100 * profile["exclusive"][n] / total, 2)} for n in names]


def by_object(profile):
    out = {}
    for name, cost in profile["exclusive"].items():
        obj = profile["objects"].get(name, "?")
        out[obj] = out.get(obj, 0) + cost
    total = profile["total"] or 1
    return {k: round(100 * v / total, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if 100 * v / total >= 0.5}


CATEGORIES = [
    # (label, regex on the function name, mangled or C): attributing exclusive cost to what it is for.
    ("AES-GCM (libsodium aesni)", r"aes|gcm|ghash|crypto_aead"),
    ("memcpy/memmove/memset", r"^(__)?mem(cpy|move|set)|_mem(cpy|move|set)"),
    ("malloc/free", r"malloc|free|_int_|cfree|realloc|tcache"),
    ("Swift retain/release, runtime", r"swift_(retain|release|bridgeObject|allocObject|deallocObject|beginAccess|endAccess|isUniquelyReferenced|arrayInit)|swift_.*[Rr]etain|swift_.*[Rr]elease"),
    ("CBOR encode/decode (EdgeWire)", r"EdgeWire|CBOR"),
    ("Array/ContiguousArray copies and appends", r"ContiguousArrayBuffer|Array.*append|_copyContents|ArraySlice|Array\w*replaceSubrange"),
    ("swift-nio", r"NIO"),
    ("Swift concurrency (tasks, continuations, executors)", r"swift_task|swift_job|swift_continuation|Executor|AsyncStream|_Concurrency"),
    ("Mutex/locks", r"pthread_mutex|Mutex|lll_lock|__lll"),
]


def categorize(profile):
    total = profile["total"] or 1
    out = {label: 0 for label, _ in CATEGORIES}
    out["other"] = 0
    compiled = [(label, re.compile(rx, re.I)) for label, rx in CATEGORIES]
    for name, cost in profile["exclusive"].items():
        for label, rx in compiled:
            if rx.search(name):
                out[label] += cost
                break
        else:
            out["other"] += cost
    return {k: round(100 * v / total, 1) for k, v in out.items()}


def profiled_binary(workdir):
    """A copy without DWARF: valgrind 3.19 cannot read the DWARF 5 that Swift 6.3 emits; symbols are kept."""
    copy = os.path.join(workdir, "OckamEdgeBench.nodebug")
    if not os.path.exists(copy):
        subprocess.run(["objcopy", "--strip-debug", harness.BENCH, copy], check=True)
    return copy


def callgrind_run(procs, workdir, role):
    out_file = os.path.join(workdir, f"callgrind-{role}.out")
    profiled = profiled_binary(workdir)
    if role == "receiver":
        server = procs.start("profiled-serve", VALGRIND + [f"--callgrind-out-file={out_file}", profiled, "serve",
                                                           "--listen", f"{harness.HOST}:0"], cpu=harness.SERVER_CPU,
                             timeout=120)
        harness.run_json([harness.BENCH, "send", "--connect", server.address, "--size", "16384", "--count",
                          str(MESSAGES), "--warmup", "50"], cpu=harness.CLIENT_CPU, timeout=900, label="send")
        procs.stop(server)  # SIGTERM: callgrind writes its output as the process ends
    else:
        server = procs.start("native-serve", [harness.BENCH, "serve", "--listen", f"{harness.HOST}:0"],
                             cpu=harness.SERVER_CPU)
        harness.run_json(VALGRIND + [f"--callgrind-out-file={out_file}", profiled, "send", "--connect",
                                     server.address, "--size", "16384", "--count", str(MESSAGES), "--warmup", "50"],
                         cpu=harness.CLIENT_CPU, timeout=900, label="profiled send")
        procs.stop(server)
    for _ in range(50):
        if os.path.exists(out_file) and os.path.getsize(out_file) > 0:
            break
        time.sleep(0.2)
    annotate = subprocess.run(["callgrind_annotate", "--threshold=95", out_file], capture_output=True, text=True)
    with open(os.path.join(RESULTS, f"profile-{role}.txt"), "w") as f:
        f.write(annotate.stdout)
    return parse_callgrind(out_file)


SODIUM_ENTRY_POINTS = {
    "crypto_scalarmult": "x25519_dh",
    "crypto_scalarmult_base": "x25519_base",
    "crypto_sign_verify_detached": "ed25519_verify",
    "crypto_aead_aes256gcm_encrypt": "aes256gcm_seal",
    "crypto_aead_aes256gcm_decrypt": "aes256gcm_open",
    "crypto_auth_hmacsha256_init": "hmac_sha256",
    "crypto_hash_sha256_init": "sha256_init (includes 2 per HMAC)",
    "randombytes_buf": "randombytes_buf",
    "sodium_malloc": "sodium_malloc (SecretBytes)",
    "sodium_free": "sodium_free",
}


def handshake_counts(workdir):
    counts = {}
    for n in (10, 60):
        out_file = os.path.join(workdir, f"callgrind-handshakes-{n}.out")
        harness.run_json(VALGRIND + [f"--callgrind-out-file={out_file}", profiled_binary(workdir), "handshakes",
                                     "--count", str(n)],
                         cpu=harness.CLIENT_CPU, timeout=900, label="profiled handshakes")
        counts[n] = parse_callgrind(out_file)["calls"]
    per = {}
    for symbol, label in SODIUM_ENTRY_POINTS.items():
        per[label] = (counts[60].get(symbol, 0) - counts[10].get(symbol, 0)) / 50
    per["sha256 (mixHash and identity hashes) = sha256_init − 2 × hmac"] = (
        per["sha256_init (includes 2 per HMAC)"] - 2 * per["hmac_sha256"])
    return per


def perf_works():
    try:
        return subprocess.run(["perf", "stat", "-e", "task-clock", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


PERF_EVENTS = "task-clock,context-switches,raw_syscalls:sys_enter"


def parse_perf_stat(text):
    out = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[0] and not line.startswith("#"):
            try:
                out[parts[2]] = float(parts[0])
            except ValueError:
                pass
    return out


def perf_scheduling(procs, workdir):
    """Software counters (no PMU needed): CPU ms, context switches and system calls per message on each side, for the
    secure channel, routing without a channel and raw TCP, 16 KiB messages. Explains a pipeline whose cores are not
    busy: each hand-off between threads is a context switch, each write or read a system call."""
    count = int(os.environ.get("PROFILE_PERF_MESSAGES", "20000"))
    serve = procs.start("perf-serve", [harness.BENCH, "serve", "--listen", f"{harness.HOST}:0"], cpu=harness.SERVER_CPU)
    sink = procs.start("perf-sink", [harness.BENCH, "raw-sink", "--listen", f"{harness.HOST}:0"], cpu=harness.SERVER_CPU)
    systems = [
        ("ockam-edge secure channel", serve, [harness.BENCH, "send", "--connect", serve.address]),
        ("ockam-edge routing, no channel", serve, [harness.BENCH, "send", "--plain", "--connect", serve.address]),
        ("raw TCP", sink, [harness.BENCH, "raw-source", "--connect", sink.address]),
    ]
    out = {}
    for size, name, receiver, argv in [(z,) + x for z in (16384, 64) for x in systems]:
        argv = argv + ["--size", str(size), "--count", str(count if size > 1024 else 2 * count), "--warmup", "200"]
        recv_file, send_file = os.path.join(workdir, "perf-recv.csv"), os.path.join(workdir, "perf-send.csv")
        attach = subprocess.Popen(["perf", "stat", "-x", ",", "-o", recv_file, "-e", PERF_EVENTS, "-p", str(receiver.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=harness._die_with_parent)
        time.sleep(0.5)
        result = harness.run_json(["perf", "stat", "-x", ",", "-o", send_file, "-e", PERF_EVENTS, "--"] + argv,
                                  cpu=harness.CLIENT_CPU, timeout=600, label=f"perf {name}")[0]
        attach.send_signal(2)
        attach.wait(timeout=30)
        recv, send = parse_perf_stat(open(recv_file).read()), parse_perf_stat(open(send_file).read())
        n = (count if size > 1024 else 2 * count) + 200  # the warm-up messages went through the same processes
        name = f"{name}, {size} B"
        out[name] = {"messages": n, "bytes_per_s": result["bytes_per_s"], "msgs_per_s": result["msgs_per_s"]}
        for side, counters in (("receiver", recv), ("sender", send)):
            out[name][side] = {
                "cpu_us_per_message": counters.get("task-clock", 0) * 1000 / n,  # task-clock is in ms
                "context_switches_per_message": counters.get("context-switches", 0) / n,
                "syscalls_per_message": counters.get("raw_syscalls:sys_enter", 0) / n,
            }
    procs.stop(serve)
    procs.stop(sink)
    return out


def perf_sampled(procs, workdir, size):
    """`perf record -e cpu-clock` (timer sampling, user and kernel) of both sides of the secure channel."""
    seconds = float(os.environ.get("PROFILE_PERF_SECONDS", "4"))
    serve = procs.start("perf-rec-serve", [harness.BENCH, "serve", "--listen", f"{harness.HOST}:0"],
                        cpu=harness.SERVER_CPU)
    recv_data, send_data = os.path.join(workdir, "perf-recv.data"), os.path.join(workdir, "perf-send.data")
    attach = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-o", recv_data, "-p",
                               str(serve.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=harness._die_with_parent)
    time.sleep(0.5)
    harness.run_json(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-o", send_data, "--",
                      harness.BENCH, "send", "--connect", serve.address, "--size", str(size), "--seconds", str(seconds)],
                     cpu=harness.CLIENT_CPU, timeout=600, label="perf record send")
    attach.send_signal(2)
    attach.wait(timeout=60)
    procs.stop(serve)
    out = {}
    for side, data in (("receiver", recv_data), ("sender", send_data)):
        report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio", "-g",
                                 "none", "--percent-limit", "0.7"], capture_output=True, text=True, timeout=300).stdout
        with open(os.path.join(RESULTS, f"perf-{side}-{size}.txt"), "w") as f:
            f.write(report)
        rows = []
        for line in report.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
            if m:
                rows.append((float(m.group(1)), m.group(2), m.group(4).strip()))
        pretty = demangle([r[2] for r in rows])
        by_dso = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso", "--stdio", "-g", "none"],
                                capture_output=True, text=True, timeout=300).stdout
        dsos = []
        for line in by_dso.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
            if m and float(m.group(1)) >= 1:
                dsos.append({"dso": m.group(2), "pct": float(m.group(1))})
        out[side] = {"top": [{"pct": r[0], "dso": r[1], "symbol": pretty.get(r[2], r[2])[:160]} for r in rows[:15]],
                     "by_dso": dsos}
    return out


def main():
    workdir = tempfile.mkdtemp(prefix="ockam-edge-profile-")
    procs = harness.Processes(workdir)
    result = {"tool": "valgrind --tool=callgrind", "messages": MESSAGES, "size": 16384,
              "perf_instructions": subprocess.run(["sh", "-c", "perf stat -e instructions true 2>&1 | grep -c 'not supported'"],
                                                  capture_output=True, text=True).stdout.strip() != "1"}
    try:
        for role in ("receiver", "sender"):
            harness.log(f"profile: {role} under callgrind, {MESSAGES} × 16 KiB")
            p = callgrind_run(procs, workdir, role)
            result[role] = {"total_instructions": p["total"], "per_message_instructions": p["total"] // MESSAGES,
                            "top_exclusive": top(p), "by_object": by_object(p), "by_category": categorize(p),
                            "memcpy_callers": callers(p, r"^(__)?mem(cpy|move)"),
                            "array_copy_callers": callers(p, r"copyCollectionToContiguousArray|copyContents"),
                            "malloc_callers": callers(p, r"^(malloc|free|cfree|_int_malloc|_int_free)$")}
        harness.log("profile: handshake operation counts")
        result["handshake_operation_counts"] = handshake_counts(workdir)
        if perf_works():
            harness.log("profile: perf software counters (CPU, context switches, system calls per message)")
            result["perf_scheduling"] = perf_scheduling(procs, workdir)
            harness.log("profile: perf record -e cpu-clock of both sides")
            result["perf_sampled"] = {str(size): perf_sampled(procs, workdir, size) for size in (16384, 64)}
    finally:
        procs.stop_all()
    result["summary_markdown"] = summary(result)
    with open(os.path.join(RESULTS, "profile.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(result["summary_markdown"])


def summary(result):
    lines = [f"Callgrind, {result['messages']} × 16 KiB through a secure channel (instructions in user space; "
             "kernel time is not seen). Whole-process instructions include start-up and the handshake.\n"]
    for role in ("receiver", "sender"):
        r = result[role]
        lines.append(f"**{role}** ({r['per_message_instructions']:,} instructions per message). By library: "
                     + ", ".join(f"{k} {v}%" for k, v in r["by_object"].items()) + ".")
        lines.append("By kind: " + ", ".join(f"{k} {v}%" for k, v in r["by_category"].items() if v >= 0.5) + ".\n")
        lines.append("| top functions (exclusive) | object | % |")
        lines.append("|---|---|---:|")
        for t in r["top_exclusive"][:12]:
            fn = t["function"].replace("|", "\\|")
            lines.append(f"| `{fn}` | {t['object']} | {t['exclusive_pct']} |")
        lines.append("")
        lines.append("| memcpy/memmove, called from | % of all instructions |")
        lines.append("|---|---:|")
        for c in r["memcpy_callers"][:8]:
            fn = c["caller"].replace("|", "\\|")
            lines.append(f"| `{fn}` | {c['pct']} |")
        lines.append("")
        lines.append("| Array(…) copies (`_copyCollectionToContiguousArray`, `_copyContents`), called from | % |")
        lines.append("|---|---:|")
        for c in r["array_copy_callers"][:8]:
            fn = c["caller"].replace("|", "\\|")
            lines.append(f"| `{fn}` | {c['pct']} |")
        lines.append("")
    sched = result.get("perf_scheduling")
    if sched:
        lines.append("`perf stat` software counters per message (CPU µs is on-CPU time of all threads of that side):\n")
        lines.append("| system, message size | msgs/s | receiver CPU µs | receiver ctx switches | receiver syscalls "
                     "| sender CPU µs | sender ctx switches | sender syscalls |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, e in sched.items():
            r, t = e["receiver"], e["sender"]
            lines.append(f"| {name} | {e['msgs_per_s']:,.0f} | {r['cpu_us_per_message']:.1f} | "
                         f"{r['context_switches_per_message']:.2f} | {r['syscalls_per_message']:.2f} | "
                         f"{t['cpu_us_per_message']:.1f} | {t['context_switches_per_message']:.2f} | "
                         f"{t['syscalls_per_message']:.2f} |")
        lines.append("")
    for size, sampled in (result.get("perf_sampled") or {}).items():
        lines.append(f"`perf record -e cpu-clock` (timer sampling of user and kernel time), secure channel, {size} B:\n")
        for side in ("receiver", "sender"):
            e = sampled[side]
            lines.append(f"**{side}** by object: " + ", ".join(f"{d['dso']} {d['pct']}%" for d in e["by_dso"]) + ".\n")
            lines.append("| % of samples | object | symbol |")
            lines.append("|---:|---|---|")
            for t in e["top"][:12]:
                sym = t["symbol"].replace("|", "\\|")
                lines.append(f"| {t['pct']} | {t['dso']} | `{sym}` |")
            lines.append("")
    counts = result.get("handshake_operation_counts")
    if counts:
        lines.append("libsodium calls per full handshake, measured (difference of two callgrind runs):\n")
        lines.append("| operation | calls per handshake |")
        lines.append("|---|---:|")
        for k, v in counts.items():
            lines.append(f"| {k} | {v:g} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
