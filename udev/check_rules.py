#!/usr/bin/env python3
"""Static checks of udev/70-ockam-edge-serial.rules, udev/71-ockam-edge-serial-nodes.rules,
udev/ockam-edge-serial@.service and udev/ockam-edge-agent.service (stdlib only).

Checks rule syntax (keys, operators, attribute braces, quoting, line continuations, GOTO/LABEL pairs) against
udev(7), and the policy of this project: every adapter rule sets GROUP="ockam-edge" and MODE="0660", no rule makes
a device world-accessible, every required vendor:product is listed, the names-and-permissions rules start nothing,
and the opt-in rules' systemd hook names the unit that exists next to them (or in UNIT_FILE's directory). Exit status
0 if everything holds; problems are printed as `file:line: message`.

Usage: check_rules.py [--tools] [--strict] [RULES_FILE [UNIT_FILE [AGENT_UNIT_FILE [NODES_RULES_FILE]]]]
  --tools    also use the real tools where present: `udevadm test` on a tty (root; isolated in a private mount
             namespace so nothing is created in /dev or /run), the same with umockdev fake FTDI, CH340, RP2040 and
             unlisted adapters, and `systemd-analyze verify` of an instance of the unit
  --strict   fail when a check had to be skipped
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

REQUIRED_IDS = [
    "0403:6001", "0403:6010", "0403:6011", "0403:6014", "0403:6015",  # FTDI
    "10c4:ea60", "10c4:ea70",  # CP210x
    "1a86:7523", "1a86:55d4",  # CH34x / CH9102
    "067b:2303", "067b:23a3",  # PL2303
    "2e8a:000a",  # RP2040 CDC-ACM
    "303a:1001",  # ESP32-S3 native USB
]

# udev(7): which operators each key accepts, and whether it takes (or requires) a {attribute}.
MATCH = {"==", "!="}
ASSIGN = {"=", "+=", "-=", ":="}
KEYS = {
    "ACTION": (MATCH, "none"), "DEVPATH": (MATCH, "none"), "KERNEL": (MATCH, "none"), "KERNELS": (MATCH, "none"),
    "SUBSYSTEM": (MATCH, "none"), "SUBSYSTEMS": (MATCH, "none"), "DRIVER": (MATCH, "none"),
    "DRIVERS": (MATCH, "none"), "ATTRS": (MATCH, "required"), "TAGS": (MATCH, "none"),
    "CONST": (MATCH, "required"), "TEST": (MATCH, "optional"), "PROGRAM": (MATCH, "none"),
    "RESULT": (MATCH, "none"),
    "NAME": (MATCH | ASSIGN, "none"), "SYMLINK": (MATCH | ASSIGN, "none"), "ATTR": (MATCH | ASSIGN, "required"),
    "SYSCTL": (MATCH | ASSIGN, "required"), "ENV": (MATCH | ASSIGN, "required"), "TAG": (MATCH | ASSIGN, "none"),
    "OWNER": (ASSIGN, "none"), "GROUP": (ASSIGN, "none"), "MODE": (ASSIGN, "none"),
    "SECLABEL": (ASSIGN, "required"), "RUN": (ASSIGN, "optional"), "LABEL": ({"="}, "none"),
    "GOTO": ({"="}, "none"), "IMPORT": (ASSIGN - {"-="}, "required"), "OPTIONS": (ASSIGN, "none"),
}
IMPORT_TYPES = {"program", "builtin", "file", "db", "cmdline", "parent"}
RUN_TYPES = {"program", "builtin"}

TOKEN = re.compile(r'^([A-Z_]+)(\{([^{}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"$')


def logical_lines(text):
    """Joins backslash continuations; yields (first line number, text) without comments and blank lines."""
    buffer, start = "", None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if start is None:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        yield start, buffer.strip()
        buffer, start = "", None
    if start is not None:
        yield start, buffer.strip() + "\\"  # dangling continuation: reported by the tokenizer


def split_tokens(line):
    """Splits a rule at commas outside double quotes; None if quotes are unbalanced."""
    tokens, current, quoted, escaped = [], "", False, False
    for char in line:
        if escaped:
            current += char
            escaped = False
        elif char == "\\" and quoted:
            current += char
            escaped = True
        elif char == '"':
            current += char
            quoted = not quoted
        elif char == "," and not quoted:
            tokens.append(current.strip())
            current = ""
        else:
            current += char
    if quoted:
        return None
    tokens.append(current.strip())
    return tokens


def parse_rules(path, problems):
    """Syntax of one rules file against udev(7). Returns (text, rules as [(line, [(key, attribute, operator, value)])])."""

    def problem(line, message):
        problems.append(f"{path}:{line}: {message}")

    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    rules = []
    for number, line in logical_lines(text):
        tokens = split_tokens(line)
        if tokens is None:
            problem(number, "unbalanced double quotes")
            continue
        rule = []
        for token in tokens:
            if not token:
                problem(number, "empty key (stray comma?)")
                continue
            match = TOKEN.match(token)
            if not match:
                problem(number, f"not a key=\"value\" pair: {token!r}")
                continue
            key, braces, attribute, operator, value = match.groups()
            if key not in KEYS:
                problem(number, f"unknown key {key}")
                continue
            operators, attribute_rule = KEYS[key]
            if operator not in operators:
                problem(number, f"operator {operator} not valid for {key}")
            if attribute_rule == "required" and not attribute:
                problem(number, f"{key} needs {{attribute}}")
            if attribute_rule == "none" and braces:
                problem(number, f"{key} takes no {{attribute}}")
            if key == "IMPORT" and attribute not in IMPORT_TYPES:
                problem(number, f"IMPORT{{{attribute}}}: unknown import type")
            if key == "RUN" and braces and attribute not in RUN_TYPES:
                problem(number, f"RUN{{{attribute}}}: unknown run type")
            if key == "MODE" and not re.fullmatch(r"0?[0-7]{3}", value):
                problem(number, f"MODE {value!r} is not octal")
            rule.append((key, attribute, operator, value))
        rules.append((number, rule))

    labels = {value for _, rule in rules for key, _, _, value in rule if key == "LABEL"}
    for number, rule in rules:
        for key, _, _, value in rule:
            if key == "GOTO" and value not in labels:
                problem(number, f"GOTO {value!r} has no LABEL")
    return text, rules


def check_rules(path):
    """The names-and-permissions rules: every adapter rule's policy, the symlinks, and no service started."""
    problems = []

    def problem(line, message):
        problems.append(f"{path}:{line}: {message}")

    text, rules = parse_rules(path, problems)

    # Project policy.
    listed = set()
    for number, rule in rules:
        fields = {(key, attribute): (operator, value) for key, attribute, operator, value in rule}
        for key, _, operator, value in rule:
            if key == "MODE" and (value[-1] != "0" or value.lstrip("0") != "660"):
                problem(number, f'MODE="{value}": must be "0660" (never world-accessible)')
            if key == "GROUP" and value != "ockam-edge":
                problem(number, f'GROUP="{value}": must be "ockam-edge"')
        vendor = fields.get(("ATTRS", "idVendor"))
        if vendor is None:
            continue
        product = fields.get(("ATTRS", "idProduct"))
        if vendor[0] != "==" or product is None or product[0] != "==":
            problem(number, "an adapter rule must match ATTRS{idVendor}== and ATTRS{idProduct}==")
            continue
        if not re.fullmatch(r"[0-9a-f]{4}", vendor[1]) or not re.fullmatch(r"[0-9a-f]{4}", product[1]):
            problem(number, "vendor/product ids must be 4 lower-case hex digits (sysfs spelling)")
        if fields.get(("GROUP", None)) != ("=", "ockam-edge"):
            problem(number, 'adapter rule must set GROUP="ockam-edge"')
        if fields.get(("MODE", None)) != ("=", "0660"):
            problem(number, 'adapter rule must set MODE="0660"')
        if fields.get(("ENV", "OCKAM_EDGE_SERIAL")) != ("=", "1"):
            problem(number, 'adapter rule must set ENV{OCKAM_EDGE_SERIAL}="1"')
        pair = f"{vendor[1]}:{product[1]}"
        if pair in listed:
            problem(number, f"{pair} listed twice")
        listed.add(pair)
    for pair in REQUIRED_IDS:
        if pair not in listed:
            problems.append(f"{path}: required adapter {pair} is not listed")

    wants = [value for _, rule in rules for key, attribute, _, value in rule if (key, attribute) == ("ENV", "SYSTEMD_WANTS")]
    tags = [value for _, rule in rules for key, _, operator, value in rule if key == "TAG" and operator in ASSIGN]
    if "systemd" not in tags:
        problems.append(f'{path}: no TAG+="systemd"')
    if wants:
        problems.append(f"{path}: ENV{{SYSTEMD_WANTS}} {wants}: these rules must start nothing (that is the opt-in "
                        "71-ockam-edge-serial-nodes.rules)")
    if "ockam-edge/" not in text:
        problems.append(f"{path}: no /dev/ockam-edge/ symlink")
    return problems, sorted(listed)


def check_nodes_rules(path, unit):
    """The opt-in rules: a systemd hook, only for ports the adapter rules marked, naming the unit `unit`."""
    problems = []

    def problem(line, message):
        problems.append(f"{path}:{line}: {message}")

    text, rules = parse_rules(path, problems)
    wants = [value for _, rule in rules for key, attribute, _, value in rule if (key, attribute) == ("ENV", "SYSTEMD_WANTS")]
    guarded = any(("ENV", "OCKAM_EDGE_SERIAL", "!=", "1") in [(k, a, o, v) for k, a, o, v in rule]
                  and any(k == "GOTO" for k, _, _, _ in rule) for _, rule in rules)
    if not guarded:
        problems.append(f'{path}: must skip ports without ENV{{OCKAM_EDGE_SERIAL}}="1" (GOTO past the hook)')
    if len(wants) != 1:
        problems.append(f"{path}: expected one ENV{{SYSTEMD_WANTS}}, found {wants}")
    for value in wants:
        template = re.sub(r"@[^.]*\.service$", "@.service", value)
        if template != os.path.basename(unit):
            problems.append(f"{path}: SYSTEMD_WANTS {value!r}: the unit is {os.path.basename(unit)}, not {template}")
        elif not os.path.exists(unit):
            problems.append(f"{path}: SYSTEMD_WANTS {value!r}: no unit file {unit}")
    for number, rule in rules:
        for key, _, _, _ in rule:
            if key in ("GROUP", "MODE", "OWNER", "SYMLINK", "NAME"):
                problem(number, f"{key}: permissions and names belong in 70-ockam-edge-serial.rules")
    return problems


def parse_unit(path, problems):
    """{(section, key): [values]} of a systemd unit; malformed lines are reported in `problems`."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    section, settings = None, {}
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if re.fullmatch(r"\[[A-Za-z]+\]", stripped):
            section = stripped[1:-1]
            continue
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", stripped)
        if not match or section is None:
            problems.append(f"{path}:{number}: not a Key=value line in a section")
            continue
        settings.setdefault((section, match.group(1)), []).append(match.group(2))
    return settings


HARDENING = {
    ("Service", "User"): "ockam-edge", ("Service", "Group"): "ockam-edge", ("Service", "NoNewPrivileges"): "yes",
    ("Service", "ProtectSystem"): "strict", ("Service", "PrivateTmp"): "yes", ("Service", "DevicePolicy"): "closed",
    ("Service", "ProtectHome"): "yes", ("Service", "UMask"): "0077", ("Service", "CapabilityBoundingSet"): "",
}


def check_unit(path):
    problems = []
    settings = parse_unit(path, problems)
    required = {
        ("Service", "User"): "ockam-edge", ("Service", "Group"): "ockam-edge", ("Service", "NoNewPrivileges"): "yes",
        ("Service", "ProtectSystem"): "strict", ("Service", "PrivateTmp"): "yes", ("Service", "DevicePolicy"): "closed",
    }
    for key, value in required.items():
        if value not in settings.get(key, []):
            problems.append(f"{path}: [{key[0]}] {key[1]}={value} missing")
    if not any(v.split()[0] == "ockam-edge" for v in settings.get(("Service", "StateDirectory"), [])):
        problems.append(f"{path}: StateDirectory=ockam-edge missing")
    if settings.get(("Service", "DeviceAllow")) != ["/dev/%I rw"]:
        problems.append(f"{path}: DeviceAllow must allow only the instance's tty (/dev/%I rw)")
    exec_start = settings.get(("Service", "ExecStart"), [""])[0]
    if "--serial /dev/%I" not in exec_start:
        problems.append(f"{path}: ExecStart does not pass --serial /dev/%I")
    return problems


# MARK: - Dynamic checks with the real udev rule engine (optional: root, unshare, udevadm; umockdev for fake devices)

FAKE_GID = 64990

# (name, vendor, product, serial or None, kernel name, USB port, driver, expected ockam-edge link or None)
FAKE_DEVICES = [
    ("FTDI FT232R", "0403", "6001", "A50285BI", "ttyUSB0", "2", "ftdi_sio", "ockam-edge/0403_6001-A50285BI-if00"),
    ("CH340 without serial number", "1a86", "7523", None, "ttyUSB1", "3", "ch341-uart",
     "ockam-edge/1a86_7523-path-pci-0000_00_14_0-usb-0_3_1_0"),
    ("RP2040 CDC-ACM", "2e8a", "000a", "E6614C311B2D6A39", "ttyACM0", "4", "cdc_acm",
     "ockam-edge/2e8a_000a-E6614C311B2D6A39-if00"),
    ("unlisted adapter", "1234", "5678", "X1", "ttyUSB2", "5", "ftdi_sio", None),
]


def check_agent_unit(path):
    """The gateway agent's unit: the same hardening, plus what the agent needs (BLE sockets, reload, config check)."""
    problems = []
    settings = parse_unit(path, problems)
    for key, value in HARDENING.items():
        if value not in settings.get(key, []):
            problems.append(f"{path}: [{key[0]}] {key[1]}={value} missing")
    if not any(v.split()[0] == "ockam-edge" for v in settings.get(("Service", "StateDirectory"), [])):
        problems.append(f"{path}: StateDirectory=ockam-edge missing")
    families = " ".join(settings.get(("Service", "RestrictAddressFamilies"), [])).split()
    if "AF_BLUETOOTH" not in families or not set(families) <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_BLUETOOTH"}:
        problems.append(f"{path}: RestrictAddressFamilies must be AF_UNIX AF_INET AF_INET6 AF_BLUETOOTH")
    if " agent --config " not in settings.get(("Service", "ExecStart"), [""])[0]:
        problems.append(f"{path}: ExecStart does not run `ockam-edge agent --config …`")
    if not any("--check-config" in v for v in settings.get(("Service", "ExecStartPre"), [])):
        problems.append(f"{path}: ExecStartPre should validate the configuration (--check-config)")
    if not any("-HUP" in v for v in settings.get(("Service", "ExecReload"), [])):
        problems.append(f"{path}: ExecReload should send SIGHUP (reload without dropping links)")
    for allow in settings.get(("Service", "DeviceAllow"), []):
        if not allow.startswith("char-tty") or not allow.endswith(" rw"):
            problems.append(f"{path}: DeviceAllow={allow}: only tty character devices")
    return problems


def umockdev_description(vendor, product, serial, kernel, port, driver):
    """A umockdev device tree: PCI xHCI → USB device → interface (→ usb-serial port) → tty."""
    usb = f"/devices/pci0000:00/0000:00:14.0/usb1/1-{port}"
    interface = f"{usb}/1-{port}:1.0"
    acm = kernel.startswith("ttyACM")
    parent = interface if acm else f"{interface}/{kernel}"
    major, minor = (166, 0) if acm else (188, int(kernel[6:]))
    blocks = [
        f"P: {parent}/tty/{kernel}\nN: {kernel}\nE: DEVNAME=/dev/{kernel}\nE: MAJOR={major}\nE: MINOR={minor}\n"
        f"E: SUBSYSTEM=tty\nA: dev={major}:{minor}\n",
    ]
    if not acm:
        blocks.append(f"P: {parent}\nE: DRIVER={driver}\nE: SUBSYSTEM=usb-serial\nA: port_number=0\n")
    interface_class = "02" if acm else "ff"
    blocks.append(
        f"P: {interface}\nE: DEVTYPE=usb_interface\nE: DRIVER={driver}\nE: PRODUCT={int(vendor, 16):x}/{int(product, 16):x}/100\n"
        f"E: SUBSYSTEM=usb\nA: bInterfaceNumber=00\nA: bInterfaceClass={interface_class}\nA: bInterfaceSubClass=00\n"
        f"A: bInterfaceProtocol=00\nA: bNumEndpoints=02\nA: bAlternateSetting= 0\n")
    device = (f"P: {usb}\nN: bus/usb/001/00{port}\nE: DEVTYPE=usb_device\nE: DRIVER=usb\nE: SUBSYSTEM=usb\n"
              f"E: PRODUCT={int(vendor, 16):x}/{int(product, 16):x}/100\nE: BUSNUM=001\nE: DEVNUM=00{port}\n"
              f"A: idVendor={vendor}\nA: idProduct={product}\nA: bcdDevice=0100\nA: busnum=1\nA: devnum={port}\n"
              f"A: devpath={port}\nA: bDeviceClass=00\nA: bNumInterfaces= 1\nA: bConfigurationValue=1\n"
              f"A: manufacturer=Test\nA: product=Adapter {vendor}:{product}\nA: speed=12\n")
    if serial:
        device += f"A: serial={serial}\n"
    blocks.append(device)
    blocks.append("P: /devices/pci0000:00/0000:00:14.0/usb1\nE: DEVTYPE=usb_device\nE: DRIVER=usb\nE: SUBSYSTEM=usb\n"
                  "A: idVendor=1d6b\nA: idProduct=0002\nA: busnum=1\nA: devnum=1\nA: devpath=0\n")
    blocks.append("P: /devices/pci0000:00/0000:00:14.0\nE: DRIVER=xhci_hcd\nE: SUBSYSTEM=pci\nA: vendor=0x8086\n"
                  "A: device=0xa36d\nA: class=0x0c0330\n")
    blocks.append("P: /devices/pci0000:00\nE: SUBSYSTEM=\n")
    return "\n".join(blocks), f"/sys{parent}/tty/{kernel}"


def run_isolated(rules, command):
    """Runs `command` in a private mount namespace: our rules (a list of files) as the only /etc/udev/rules.d files, a group file with
    ockam-edge, and tmpfs over /dev and /run, so `udevadm test` (which creates symlinks and a udev database) leaves
    the machine untouched. Returns (exit status, output)."""
    import shutil
    import subprocess
    import tempfile
    work = tempfile.mkdtemp(prefix="ockam-edge-udev-")
    try:
        os.mkdir(os.path.join(work, "rules.d"))
        for path in rules:
            shutil.copy(path, os.path.join(work, "rules.d", os.path.basename(path)))
        with open("/etc/group", encoding="utf-8") as source, open(os.path.join(work, "group"), "w") as target:
            # The fake group replaces a real one (the installed package's), so the checks can expect its gid.
            kept = [line for line in source if not line.startswith("ockam-edge:")]
            target.write("".join(kept) + f"ockam-edge:x:{FAKE_GID}:\n")
        script = f"""set -eu
mount --make-rprivate /
mkdir -p {work}/olddev
mount --rbind /dev {work}/olddev
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero full random urandom tty; do touch /dev/$n; mount --bind {work}/olddev/$n /dev/$n; done
mkdir /dev/pts && mount --bind {work}/olddev/pts /dev/pts && ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd
mount -t tmpfs tmpfs /run
mount --bind {work}/rules.d /etc/udev/rules.d
mount --bind {work}/group /etc/group
{command}
"""
        result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                capture_output=True, text=True, timeout=120)
        return result.returncode, result.stdout + result.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def about(line, name):
    """Whether udevadm's output line is about the rules file `name` (not the notice that the copy under test in
/etc/udev/rules.d overrides an installed one of the same name)."""
    return name in line and "Reading rules file" not in line and "Skipping overridden file" not in line


def dynamic_checks(rules, nodes):
    """`udevadm test` of the rules, and with umockdev fake adapters under both files (the hook expected) and under the
    names-and-permissions rules alone (no hook). Returns (problems, verified, skipped)."""
    import shutil
    problems, verified, skipped = [], [], []
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("udevadm") \
            or not os.path.isdir("/etc/udev/rules.d"):
        skipped.append("udevadm test (needs root, unshare, udevadm and /etc/udev/rules.d)")
        return problems, verified, skipped
    name = os.path.basename(rules)
    target = next((f"/sys/class/tty/{t}" for t in ("ttyS0", "tty0", "console", "tty")
                   if os.path.exists(f"/sys/class/tty/{t}")), None)
    if target is None:
        skipped.append("udevadm test (no tty in /sys/class/tty)")
    else:
        status, output = run_isolated([rules, nodes], f"udevadm test {target}")
        for file in (name, os.path.basename(nodes)):
            complaints = [line for line in output.splitlines() if about(line, file)]
            if f"Reading rules file: /etc/udev/rules.d/{file}" not in output:
                problems.append(f"udevadm test did not read {file} (status {status}): {output[-400:]}")
            elif complaints:
                problems += [f"udevadm: {line}" for line in complaints]
            else:
                verified.append(f"udevadm {udev_version()} parsed {file} without a warning")
    if not shutil.which("umockdev-run"):
        skipped.append("fake-device rule runs (install umockdev)")
        return problems, verified, skipped
    import tempfile
    cases = [(device, True) for device in FAKE_DEVICES] + [(FAKE_DEVICES[0], False)]
    for (label, vendor, product, serial, kernel, port, driver, link), with_nodes in cases:
        description, devpath = umockdev_description(vendor, product, serial, kernel, port, driver)
        with tempfile.NamedTemporaryFile("w", suffix=".umockdev", delete=False) as handle:
            handle.write(description)
        try:
            status, output = run_isolated([rules, nodes] if with_nodes else [rules],
                                          f"umockdev-run -d {handle.name} -- udevadm test {devpath}")
        finally:
            os.unlink(handle.name)
        ours = [line for line in output.splitlines() if about(line, name)]
        failures = []
        if link is None:
            if ours or "SYSTEMD_WANTS=" in output or "OCKAM_EDGE_SERIAL" in output:
                failures.append("rules applied to an unlisted adapter")
        else:
            expectations = [f"{name}:", f"GROUP {FAKE_GID}", "MODE 0660", f"LINK '{link}'", "ID_MM_DEVICE_IGNORE=1",
                            ":systemd:"]
            failures += [f"missing {e!r}" for e in expectations if e not in output]
            hook = f"SYSTEMD_WANTS=ockam-edge-serial@{kernel}.service"
            if with_nodes and hook not in output:
                failures.append(f"missing {hook!r}")
            if not with_nodes and "SYSTEMD_WANTS=" in output:
                failures.append(f"{name} alone started a service")
        if f"DEVPATH={devpath[4:]}" not in output:
            failures.append(f"udevadm did not process the fake device (status {status})")
        if failures:
            problems.append(f"fake {label} ({vendor}:{product} {kernel}): " + "; ".join(failures)
                            + ("" if link else "") + f"\n--- output tail ---\n{output[-1500:]}")
        else:
            if not with_nodes:
                verified.append(f"fake {label} under {name} alone: group/mode/link, no service started")
            else:
                verified.append(f"fake {label} {vendor}:{product} as {kernel}: "
                                + (f"group/mode/link /dev/{link}/systemd hook as expected" if link else "left alone"))
    return problems, verified, skipped


def verify_unit(unit):
    """`systemd-analyze verify` of ockam-edge-serial@ttyUSB0.service, with ExecStart's binary replaced by /bin/true
    (the agent is not installed here). Returns (problems, verified, skipped)."""
    import shutil
    import subprocess
    import tempfile
    if not shutil.which("systemd-analyze"):
        return [], [], ["systemd-analyze verify (not installed)"]
    work = tempfile.mkdtemp(prefix="ockam-edge-unit-")
    try:
        name = os.path.basename(unit)
        with open(unit, encoding="utf-8") as source:
            text = re.sub(r"^(ExecStart|ExecStartPre)=\S+", r"\1=/bin/true", source.read(), flags=re.M)
        with open(os.path.join(work, name), "w", encoding="utf-8") as target:
            target.write(text)
        instance = name.replace("@.service", "@ttyUSB0.service")
        environment = dict(os.environ, SYSTEMD_UNIT_PATH=work + ":")
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", instance], capture_output=True, text=True,
                                env=environment, cwd=work, timeout=60)
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or output:
            return [f"systemd-analyze verify {instance}: {output or result.returncode}"], [], []
        return [], [f"systemd-analyze verify {instance}: no warnings"], []
    finally:
        shutil.rmtree(work, ignore_errors=True)


def udev_version():
    import subprocess
    try:
        return subprocess.run(["udevadm", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main(argv):
    arguments = [a for a in argv[1:] if not a.startswith("--")]
    dynamic = "--tools" in argv
    strict = "--strict" in argv
    rules = arguments[0] if arguments else os.path.join(HERE, "70-ockam-edge-serial.rules")
    unit = arguments[1] if len(arguments) > 1 else os.path.join(HERE, "ockam-edge-serial@.service")
    agent = arguments[2] if len(arguments) > 2 else os.path.join(HERE, "ockam-edge-agent.service")
    nodes = arguments[3] if len(arguments) > 3 else os.path.join(HERE, "71-ockam-edge-serial-nodes.rules")
    problems, listed = check_rules(rules)
    problems += check_nodes_rules(nodes, unit)
    problems += check_unit(unit)
    problems += check_agent_unit(agent)
    verified = [f"{os.path.basename(rules)}: syntax and policy ({len(listed)} adapters)",
                f"{os.path.basename(nodes)}: syntax and policy (the opt-in systemd hook)",
                f"{os.path.basename(unit)}: hardening settings",
                f"{os.path.basename(agent)}: hardening settings"]
    skipped = []
    if dynamic and not problems:
        for more, done, missing in (dynamic_checks(rules, nodes), verify_unit(unit), verify_unit(agent)):
            problems += more
            verified += done
            skipped += missing
    for line in problems:
        print(line)
    for line in verified:
        print(f"verified: {line}")
    for line in skipped:
        print(f"skipped: {line}")
    if problems or (strict and skipped):
        print(f"check_rules: {len(problems)} problem(s), {len(skipped)} check(s) skipped")
        return 1
    print("check_rules: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
