#!/usr/bin/env python3
"""Markdown summary and chart data for bench/results/latest.json (python3 standard library only).

    python3 bench/report.py bench/results/latest.json   # re-renders latest.md, throughput.dat and throughput.gp
"""
import json
import os
import sys

CHART_SYSTEMS = [
    ("ockam-edge secure channel", "ockam-edge secure channel"),
    ("ockam-edge routing, no channel", "ockam-edge routing, no channel"),
    ("stunnel TLS 1.3", "stunnel TLS 1.3 (AES-256-GCM)"),
    ("raw TCP", "raw TCP"),
    ("libsodium AES-256-GCM seal+open (1 core)", "limit: libsodium AES-256-GCM seal+open, 1 core"),
]


def mb(value):
    return "–" if value is None else f"{value / 1e6:,.1f}"


def num(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(entry):
    if not entry or entry.get("median") is None:
        return "–" if not entry or "skipped" not in entry else "skipped"
    return f"{entry['median']:.2f}"


def ratio_spread(entry):
    rounds = [r for r in (entry or {}).get("rounds", []) if r is not None]
    if len(rounds) < 2:
        return ""
    return f"{min(rounds):.2f}–{max(rounds):.2f}"


def kib(kb):
    return "–" if kb is None else f"{kb / 1024:,.1f} MiB"


def measured(suite):
    return f"_Measured {suite['measured_at']}._\n" if suite.get("measured_at") else ""


def status_line(suite):
    if not suite:
        return "**not measured** (no result for this suite in this run or the previous latest.json)\n"
    if suite.get("measured_at") and suite.get("status") == "ok":
        return None
    if suite.get("status") == "skipped":
        return f"**{suite['reason'] if suite['reason'].startswith('skipped') else 'skipped: ' + suite['reason']}**\n"
    if suite.get("status") == "failed":
        return f"**failed:** `{suite.get('error', '?')[:400]}`\n"
    return None


def render(report):
    meta, suites = report["meta"], report["suites"]
    out = []
    w = out.append
    w(f"# ockam-edge benchmarks — {meta['date']}\n")
    w(f"{meta['mode']} run, commit `{meta['git_commit']}`. Machine: {meta['nproc']} CPUs ({meta['cpu_model']}, "
      f"AES-NI {'yes' if meta.get('aes_ni') else 'no'}), kernel {meta['kernel']}, {meta['memory_gb']} GiB. "
      f"Pinning: {meta['pinning']}. Load average at start {', '.join(f'{x:.2f}' for x in meta['load_average_start'])}"
      + (f", at end {', '.join(f'{x:.2f}' for x in meta['load_average_end'])}" if meta.get("load_average_end") else "")
      + f". Run took {meta.get('duration_s', '?')} s.\n")
    if meta.get("partial_rerun"):
        w(f"**Partial re-run:** {meta['partial_rerun']}.\n")
    versions = report.get("versions", {})
    w("Versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()) + ".\n")
    w("Every ratio is measured side by side in the same run (median of the per-round ratios; the spread is the "
      "lowest and highest round). Absolute numbers are for context only: the machine is shared and noisy. "
      "See bench/README.md for what each figure means.\n")

    # Suite 1
    s = suites.get("1_bulk_throughput", {})
    w("## 1. Bulk throughput: 16 KiB messages, initiator → responder over loopback TCP\n")
    w(measured(s))
    line = status_line(s)
    if line:
        w(line)
    else:
        w(f"{s['rounds']} rounds of {s['seconds_per_run']} s per system.\n")
        w("| system | MB/s | msgs/s | receiver CPU µs/msg | sender CPU µs/msg | receiver cores busy | sender cores busy |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for name, e in s["systems"].items():
            w(f"| {name} | {mb(e.get('bytes_per_s'))} | {num(e.get('msgs_per_s'))} | "
              f"{num(e.get('server_cpu_us_per_msg'), 1)} | {num(e.get('client_cpu_us_per_msg'), 1)} | "
              f"{num(e.get('server_cores'), 2)} | {num(e.get('client_cores'), 2)} |")
        w("")
        w("| ratio (bytes/s) | median | rounds |")
        w("|---|---:|---:|")
        for name, e in s["ratios"].items():
            w(f"| {name} | {ratio(e)} | {ratio_spread(e)} |")
        w("")

    # Suite 2
    s = suites.get("2_size_sweep", {})
    w("## 2. Message-size sweep (same path)\n")
    w(measured(s))
    line = status_line(s)
    if line:
        w(line)
    else:
        w(f"{s['rounds']} rounds of {s['seconds_per_run']} s per system and size. MB/s (msgs/s).\n")
        w("| size | secure channel | routing, no channel | stunnel TLS 1.3 | raw TCP | limit (AES-GCM, 1 core) "
          "| secure / limit | secure / stunnel | secure / no channel |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size, e in s["sizes"].items():
            sy = e["systems"]

            def cell(name):
                x = sy.get(name, {})
                return f"{mb(x.get('bytes_per_s'))} ({num(x.get('msgs_per_s'))})" if x else "–"

            r = e["ratios"]
            w(f"| {int(size):,} B | {cell('ockam-edge secure channel')} | {cell('ockam-edge routing, no channel')} | "
              f"{cell('stunnel TLS 1.3')} | {cell('raw TCP')} | {cell('libsodium AES-256-GCM seal+open (1 core)')} | "
              f"{ratio(r.get('secure / limit'))} | {ratio(r.get('secure / stunnel'))} | "
              f"{ratio(r.get('secure / routing, no channel'))} |")
        w("\nChart: [throughput.svg](throughput.svg).\n")

    # Suite 3
    s = suites.get("3_gateway_hop", {})
    w("## 3. Small sensor messages (64 B) through a gateway hop, end-to-end channel\n")
    w(measured(s))
    line = status_line(s)
    if line:
        w(line)
    else:
        # Older results (before the serial link) hold one TCP link at the top level.
        links = s.get("links") or {s.get("device_link", "tcp"): s}
        w(f"Device links: {', '.join(links)}; each against the same path without the gateway hop, on the same link. "
          f"{s['rounds']} rounds.\n")
        for link, e in links.items():
            render_gateway_link(link, e, w)

    # Suite 4
    s = suites.get("4_handshakes", {})
    w("## 4. Handshakes on one core (Ockam XX, identities and attestations verified)\n")
    w(measured(s))
    line = status_line(s)
    if line:
        w(line)
    elif "bound" in s and isinstance(s["bound"], dict) and "skipped" in s["bound"]:
        w(f"Bound skipped: {s['bound']['skipped']}\n")
    else:
        w(f"| figure | value |")
        w("|---|---:|")
        w(f"| full handshakes/s (both sides on one core) | {num(s['handshakes_per_s'])} |")
        w(f"| µs per handshake: initiator + responder | {num(s['initiator_us'], 0)} + {num(s['responder_us'], 0)} |")
        w(f"| primitive bound, handshakes/s | {num(s['bound_handshakes_per_s'])} |")
        w(f"| **ratio to the bound** | **{ratio(s['ratio_to_bound'])}** ({ratio_spread(s['ratio_to_bound'])}) |")
        w(f"| SecretKey life (sodium_malloc + mprotect + sodium_free), µs each | {num(s['secretkey_lifecycle_us'], 1)} |")
        w("")
        w(f"Operations per full handshake (identity payload {s['identity_payload_bytes']} B):\n")
        w("| operation | bytes | count | ns each | µs per handshake |")
        w("|---|---:|---:|---:|---:|")
        for op in s["operations"]:
            w(f"| {op['op']} | {op['bytes']} | {op['per_handshake']} | {num(op['ns_each'])} | {num(op['us_per_handshake'], 1)} |")
        w(f"| **sum** | | | | **{num(s['bound_us_sum_of_parts'], 1)}** (replayed back to back: {num(s['bound_us'], 1)}) |")
        w("")

    # Suite 5
    s = suites.get("5_footprint", {})
    w("## 5. Footprint\n")
    w(measured(s))
    line = status_line(s)
    if line:
        w(line)
    else:
        b = s["binary"]
        w("| binary | size |")
        w("|---|---:|")
        if "dynamic" in b:
            d = b["dynamic"]
            w(f"| `ockam-edge`, default release build (dynamic Swift runtime) | {d['bytes'] / 2**20:.1f} MiB "
              f"({d['stripped_bytes'] / 2**20:.1f} MiB stripped; + {d['swift_shared_libraries_bytes'] / 2**20:.1f} MiB "
              f"of Swift shared libraries) |")
        st = b.get("static", {})
        if "stripped_bytes" in st:
            w(f"| `ockam-edge`, `--static-swift-stdlib -Xlinker -s` | {st['stripped_bytes'] / 2**20:.1f} MiB |")
        else:
            w(f"| `ockam-edge`, static | {st.get('skipped', '–')} |")
        w("")
        w("| node (`ockam-edge node run`) | RSS | threads |")
        w("|---|---:|---:|")
        w(f"| idle | {kib(s['idle_node']['rss_kb'])} | {num(s['idle_node']['threads'])} |")
        for n, e in s["channels"].items():
            w(f"| {int(n):,} secure channel{'s' if int(n) != 1 else ''} open | {kib(e['node_rss_kb'])} | {num(e['node_threads'])} |")
        if "per_channel_kb" in s:
            w(f"\nPer channel: **{num(s['per_channel_kb']['median'], 1)} KiB** on the responder (node), "
              f"{num(s['per_channel_kb_initiator']['median'], 1)} KiB on the initiator (the driver process), "
              f"measured {s['per_channel_kb']['between']}. Handshakes over TCP while opening: "
              + ", ".join(f"{num(e['handshakes_per_s_over_tcp'])}/s opening up to {int(n):,}"
                          for n, e in s["channels"].items() if int(n) >= 100) + " (8 in flight, one TCP connection).\n")
        w("Bridging the same 16 KiB stream (RSS idle → peak while carrying; threads):\n")
        w("| bridge | idle RSS | peak RSS | threads | MB/s carried |")
        w("|---|---:|---:|---:|---:|")
        for name, e in s["bridges"].items():
            if "skipped" in e:
                w(f"| {name} | {e['skipped']} | | | |")
                continue
            w(f"| {name} | {kib((e.get('idle') or {}).get('rss_kb'))} | {kib(e['carrying'].get('peak_rss_kb'))} | "
              f"{num(e['carrying'].get('threads'))} | {mb(e.get('bytes_per_s'))} |")
        w("")

    for key, title, body in (("6_serial", "## 6. Serial\n", render_serial),
                             ("7_ble", "## 7. BLE (virtual rig: QEMU/TCG, btvirt, kernel L2CAP LE CoC)\n", render_ble)):
        s = suites.get(key, {"status": "skipped", "reason": "skipped"})
        w(title)
        w(measured(s))
        w(status_line(s) or "") if status_line(s) else body(s, w)

    p = report.get("profile")
    if p:
        w("## Profile of suite 1 (callgrind)\n")
        w(p.get("summary_markdown", ""))
    return "\n".join(out) + "\n"


GATEWAY_LINKS = {
    "tcp": ("TCP", "device → cloud over TCP", "device → gateway (TCP) → cloud (TCP)"),
    "serial-pty": ("serial (pty pair)", "device → cloud over serial", "device → gateway (serial) → cloud (TCP)"),
}


def render_gateway_link(link, e, w):
    title, direct, via = GATEWAY_LINKS.get(link, (link, "direct", "via gateway"))
    w(f"### Device link: {title}\n")
    if e.get("link_note"):
        w(f"{e['link_note']}.\n")
    mr = e["max_rate"]
    w("| unpaced | msgs/s |")
    w("|---|---:|")
    w(f"| direct ({direct}) | {num(mr['direct']['msgs_per_s'])} |")
    w(f"| via gateway ({via}) | {num(mr['via gateway']['msgs_per_s'])} |")
    w(f"| ratio via gateway / direct | {ratio(mr['via gateway / direct'])} |\n")
    w("One-way latency, µs, from the moment the device handed the message to its node until the cloud sink got "
      "it (CLOCK_MONOTONIC stamps in the payload):\n")
    w("| rate | path | p50 | p99 | p99.9 | max | received/sent |")
    w("|---:|---|---:|---:|---:|---:|---:|")
    for rate, x in e["latency"].items():
        for path in ("direct", "via gateway"):
            y = x[path]
            w(f"| {int(rate):,}/s | {path} | {num(y['p50_us'], 1)} | {num(y['p99_us'], 1)} | {num(y['p999_us'], 1)} "
              f"| {num(y['max_us'], 0)} | {num(y['received'])}/{num(y['sent'])} |")
        a = x["added by gateway"]
        w(f"| {int(rate):,}/s | **added by the gateway** | {num(a['p50_us'], 1)} (×{num(a['p50_ratio'], 2)}) | "
          f"{num(a['p99_us'], 1)} (×{num(a['p99_ratio'], 2)}) | {num(a['p999_us'], 1)} (×{num(a['p999_ratio'], 2)}) | | |")
    w("")


BLE_SYSTEMS = ("ockam-edge secure channel", "ockam-edge routing, no channel", "raw L2CAP")


def goodput_cell(x, divisor, unit, with_rate):
    """Payload goodput of one system (bytes/s ÷ divisor, unit), its msgs/s in brackets if with_rate, and any loss."""
    if not x:
        return "–"
    lost = f", lost {num(x.get('lost'))}" if x.get("lost") else ""
    value = f"{num((x.get('bytes_per_s') or 0) / divisor, 1)}{unit}"
    return f"{value} ({num(x.get('msgs_per_s'))}{lost})" if with_rate else f"{value}{lost}"


def render_ble(s, w):
    g = s.get("guest", {})
    cpus = g.get("cpus")
    where = ("receiving processes on hci0 (guest CPU 0), senders on hci1 (guest CPU 1)" if cpus and cpus > 1 else
             "receiving processes on hci0, senders on hci1, all sharing the one vCPU with btvirt and the kernel")
    w(f"**{s['note']}.** Inside one QEMU VM ({cpus or '?'} vCPU{'s' if cpus != 1 else ''}, guest kernel "
      f"{g.get('kernel', '?')}, btvirt LE ACL MTU {g.get('acl_mtu', '?')}); {where}. {s['rounds']} "
      f"round{'s' if s['rounds'] != 1 else ''}; per run {s['messages_per_run']} messages of {s['size']:,} B after "
      f"{s['warmup_messages']} warm-up messages, the same bytes for every system. The VM run took "
      f"{num(s.get('vm_seconds'))} s (boot and controllers up at {num(g.get('uptime_controllers_up_s'), 1)} s "
      f"guest time).\n")
    w("| MTU | secure channel | routing, no channel | raw L2CAP | **secure / raw** | no channel / raw "
      "| secure / no channel | SDUs per message (secure, no channel, raw) | link bytes per message (secure, no channel) |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mtu, e in s["mtus"].items():
        sy, r = e["systems"], e["ratios"]
        kib = [goodput_cell(sy.get(name), 1024, " KiB/s", with_rate=False) for name in BLE_SYSTEMS]

        def per_msg(name, key, digits):
            return num(sy.get(name, {}).get(key), digits)

        w(f"| {int(mtu):,} | {kib[0]} | {kib[1]} | {kib[2]} | **{ratio(r.get('secure / raw'))}** {ratio_spread(r.get('secure / raw'))} | "
          f"{ratio(r.get('routing, no channel / raw'))} {ratio_spread(r.get('routing, no channel / raw'))} | "
          f"{ratio(r.get('secure / routing, no channel'))} | "
          f"{per_msg('ockam-edge secure channel', 'wire_sdus_per_msg', 0)}, "
          f"{per_msg('ockam-edge routing, no channel', 'wire_sdus_per_msg', 0)}, {per_msg('raw L2CAP', 'wire_sdus_per_msg', 0)} | "
          f"{per_msg('ockam-edge secure channel', 'wire_bytes_per_msg', 1)}, "
          f"{per_msg('ockam-edge routing, no channel', 'wire_bytes_per_msg', 1)} |")
    w("")
    w("**One secure-channel handshake on the link** (Noise XX with identities and attestations; counted by the "
      "initiator's BLE transport: SDUs and bytes written and read, fragmentation headers included; median over the "
      "rounds — every round gives the same counts).\n")
    w("| MTU | messages out / in | SDUs out / in | bytes out / in | SDUs total | bytes total | handshake time (TCG) |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    rows = list(s["mtus"].items()) + list(s.get("handshake_only", {}).items())
    for mtu, e in sorted(rows, key=lambda kv: int(kv[0])):
        h = e.get("handshake", {})
        total_sdus = (h.get("sdus_out") or 0) + (h.get("sdus_in") or 0)
        total_bytes = (h.get("bytes_out") or 0) + (h.get("bytes_in") or 0)
        w(f"| {int(mtu):,} | {num(h.get('messages_out'))} / {num(h.get('messages_in'))} | {num(h.get('sdus_out'))} / "
          f"{num(h.get('sdus_in'))} | {num(h.get('bytes_out'))} / {num(h.get('bytes_in'))} | {num(total_sdus)} | "
          f"{num(total_bytes)} | {num((h.get('seconds_tcg') or 0) * 1000)} ms |")
    w("")


def render_serial(s, w):
    w("**Framing overhead, exact** (encoded with the project's encoders by `OckamEdgeBench serial-overhead`, not "
      "timed). Bytes on the wire for one DATA frame as ockam-edge writes it: `00 ‖ COBS(type ‖ routing message ‖ "
      "CRC-32C) ‖ 00`. Routes as the goodput run sends: no channel onward `[0#sink]`, return `[]`; secure channel "
      "outer onward `[0#<decryptor, 32 hex>]`, return `[]`, inner onward `[0#sink]`, return `[]`. COBS is the "
      "actual count for this content (worst case in brackets).\n")
    w("| payload | path | routing message | routing overhead | channel envelope + inner routes | nonce + tag "
      "| type + CRC | COBS | delimiters | wire bytes | overhead | payload / wire | msgs/s at 115200 |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, paths in sorted(s["overhead"].items(), key=lambda kv: int(kv[0])):
        for path in ("routing, no channel", "secure channel"):
            e = paths.get(path)
            if not e:
                continue
            secure = path == "secure channel"
            w(f"| {int(size):,} B | {path} | {e['routing_message_bytes']} | "
              f"{e['outer_routing_overhead'] if secure else e['routing_overhead']} | "
              f"{e['channel_envelope_and_inner_routes'] if secure else '–'} | "
              f"{str(e['nonce_bytes']) + ' + ' + str(e['tag_bytes']) if secure else '–'} | "
              f"{e['frame_type_and_crc']} | {e['cobs_actual']} ({e['cobs_worst']}) | {e['delimiters']} | "
              f"{e['wire_bytes']} ({e['wire_bytes_worst']}) | {e['overhead_bytes']} | "
              f"{e['payload_efficiency']:.2f} | {num(e['uart_115200_msgs_per_s'], 1)} |")
    w("")
    w(f"**Goodput over a pty pair** ({s['link']}). {s['rounds']} rounds of {s['seconds_per_run']} s per system "
      f"and size; KB/s of payload (msgs/s).\n")
    w("| size | secure channel | routing, no channel | raw bytes over the pty | secure / raw | no channel / raw "
      "| secure / no channel | wire bytes/msg (secure, no channel) |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, e in s["sizes"].items():
        sy, r = e["systems"], e["ratios"]

        def cell(name):
            return goodput_cell(sy.get(name), 1e3, "", with_rate=True)

        w(f"| {int(size):,} B | {cell('ockam-edge secure channel')} | {cell('ockam-edge routing, no channel')} | "
          f"{cell('raw bytes over the pty')} | {ratio(r.get('secure / raw'))} {ratio_spread(r.get('secure / raw'))} | "
          f"{ratio(r.get('routing, no channel / raw'))} {ratio_spread(r.get('routing, no channel / raw'))} | "
          f"{ratio(r.get('secure / routing, no channel'))} | "
          f"{num(sy.get('ockam-edge secure channel', {}).get('wire_bytes_per_msg'), 1)}, "
          f"{num(sy.get('ockam-edge routing, no channel', {}).get('wire_bytes_per_msg'), 1)} |")
    w("")
    w("**On a real UART at 115200 baud 8N1** (11,520 bytes/s; computed exactly from the bytes the measured messages "
      "took on the wire, not timed: a pty has no baud rate). The raw limit sends nothing but payload.\n")
    w("| size | secure channel msgs/s | payload B/s | secure / raw | no channel msgs/s | payload B/s | no channel / raw |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for size, e in s["sizes"].items():
        u = e.get("uart_115200", {})
        a, b = u.get("ockam-edge secure channel", {}), u.get("ockam-edge routing, no channel", {})
        w(f"| {int(size):,} B | {num(a.get('msgs_per_s'), 1)} | {num(a.get('payload_bytes_per_s'))} | "
          f"{num(a.get('ratio_to_raw'), 2)} | {num(b.get('msgs_per_s'), 1)} | {num(b.get('payload_bytes_per_s'))} | "
          f"{num(b.get('ratio_to_raw'), 2)} |")
    w("")


def write_chart_data(report, directory):
    """throughput.dat (size, MB/s per system) and throughput.gp (gnuplot → throughput.svg)."""
    sweep = report["suites"].get("2_size_sweep", {})
    if sweep.get("status") != "ok":
        return False
    rows = []
    for size, entry in sweep["sizes"].items():
        cells = [size]
        for key, _ in CHART_SYSTEMS:
            value = entry["systems"].get(key, {}).get("bytes_per_s")
            cells.append(f"{value / 1e6:.3f}" if value else "NaN")
        rows.append(" ".join(cells))
    with open(os.path.join(directory, "throughput.dat"), "w") as f:
        f.write("# size_bytes " + " ".join(f'"{label}"' for _, label in CHART_SYSTEMS) + "  (MB/s)\n")
        f.write("\n".join(rows) + "\n")
    meta = report["meta"]
    title = (f"ockam-edge throughput vs message size — {meta['date']}, {meta['nproc']} CPUs {meta['cpu_model']}, "
             f"{meta['mode']} run")
    plots = ", \\\n     ".join(
        f"'throughput.dat' using 1:{i + 2} with linespoints pt 7 ps 0.6 lw 1.5 title '{label}'" for i, (_, label) in enumerate(CHART_SYSTEMS))
    with open(os.path.join(directory, "throughput.gp"), "w") as f:
        f.write(f"""# gnuplot throughput.gp (run in bench/results) → throughput.svg
set terminal svg size 960,600 dynamic font 'sans,12'
set output 'throughput.svg'
set title "{title}" font 'sans,11'
set logscale x 2
set logscale y 10
set xlabel 'message size (bytes)'
set ylabel 'throughput (MB/s, payload bytes)'
set key right bottom
set xrange [45:92000]
set grid
set xtics ("64" 64, "256" 256, "1K" 1024, "4K" 4096, "16K" 16384, "64K" 65536)
plot {plots}
""")
    return True


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results", "latest.json")
    data = json.load(open(path))
    text = render(data)
    directory = os.path.dirname(os.path.abspath(path))
    open(os.path.join(directory, "latest.md"), "w").write(text)
    write_chart_data(data, directory)
    print(text)
