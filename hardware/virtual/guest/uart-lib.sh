# Shared by the two halves of the UART suite (../uart-suite.sh on the host, uart.sh in the VM); sourced, not run.
# Needs OCKAM_EDGE (the binary) and LOG (the log of the node the checks send through). Every wait is bounded by STEP_TIMEOUT (UART_RIG_STEP_TIMEOUT, default 60 s).
STEP_TIMEOUT=${UART_RIG_STEP_TIMEOUT:-60}
PASSED=0
FAILED=0

note() { echo "# $*"; }

record() {  # record <status> <name> [log…]: an `ok`/`not ok` line; a failure shows the tail of its logs
    local status=$1 name=$2
    shift 2
    if [ "$status" = 0 ]; then
        PASSED=$((PASSED + 1))
        echo "ok - $name"
    else
        FAILED=$((FAILED + 1))
        echo "not ok - $name"
        for log in "$@"; do
            [ -f "$log" ] && tail -n 20 "$log" | sed 's/^/#   /'
        done
    fi
}

# wait_for <seconds> <command…>: polls a condition every 0.2 s, bounded.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# wait_linked <node> <link name>: the node's serial port <name> has a link session (status phase `linked`).
linked() { "$OCKAM_EDGE" status --from "$1" --json | tr -d ' \n' | grep -q "\"name\":\"$2\",[^}]*\"phase\":\"linked\""; }
wait_linked() { wait_for "$STEP_TIMEOUT" linked "$1" "$2"; }

counters() {  # the node's serial counters, as one comment line
    "$OCKAM_EDGE" status --from "$1" --json 2>/dev/null | tr -d '\n' | grep -o '"serial_ports":[^]]*]' | sed 's/^/# /'
}

# send <node> <expected reply> <message send arguments…>: one request through the running node; the reply must be
# exactly the expected text. Sets REPLY_FILE to its output.
OUT_DIR=${OUT_DIR:-$(mktemp -d)}
send() {
    local node=$1 expected=$2
    shift 2
    local limit=${SEND_TIMEOUT:-$STEP_TIMEOUT}
    REPLY_FILE="$OUT_DIR/reply"
    timeout $((limit + 5)) "$OCKAM_EDGE" message send --from "$node" --timeout "${limit}s" "$@" \
        > "$REPLY_FILE" 2> "$OUT_DIR/reply.err" || return 1
    [ "$(cat "$REPLY_FILE")" = "$expected" ]
}

# text <bytes> <seed>: printable pseudo-random text of that length (no shell or JSON specials).
text() { tr -dc 'A-Za-z0-9' < /dev/urandom | head -c "$1"; }

# burst <node> <route> <senders> <messages each> <label>: <senders> `message send --count` processes at once,
# so their frames interleave on the line; every reply must come back, in order per sender.
burst() {
    local node=$1 route=$2 senders=$3 each=$4 pids=() s status=0
    for s in $(seq "$senders"); do
        timeout $((STEP_TIMEOUT * 2)) "$OCKAM_EDGE" message send --from "$node" --timeout "${STEP_TIMEOUT}s" \
            --count "$each" "$route" "burst $s.{n} $(printf 'x%.0s' $(seq 200))" > "$OUT_DIR/burst.$s" 2>&1 &
        pids+=($!)
    done
    for s in "${!pids[@]}"; do wait "${pids[$s]}" || status=1; done
    for s in $(seq "$senders"); do
        seq 0 $((each - 1)) | sed "s/.*/burst $s.& $(printf 'x%.0s' $(seq 200))/" | cmp -s - "$OUT_DIR/burst.$s" || status=1
    done
    return $status
}

# echo_checks <node> <route prefix> <label> [quick]: the exchanges run in each direction at each rate. `quick`
# (the VM → host direction after the first rate: every command is a new process, slow under TCG) keeps the plain
# and secure round trips, one large frame through the secure channel and a small burst.
echo_checks() {
    local node=$1 prefix=$2 label=$3 quick=${4:-} t large
    local started=$SECONDS
    t="ockam over a 16550 at $label"
    send "$node" "${t^^}" "$prefix/service/uppercase" "$t"
    record $? "$label: uppercase round trip" "$OUT_DIR/reply" "$OUT_DIR/reply.err"

    t=$(text 1000)
    send "$node" "${t^^}" "$prefix/secure/api/service/uppercase" "$t"
    record $? "$label: end-to-end secure channel (/secure/api), uppercase of 1000 bytes" "$OUT_DIR/reply" "$OUT_DIR/reply.err"

    if [ -n "$quick" ]; then
        large=$(text 15000)
        send "$node" "$large" "$prefix/secure/api/service/echo" "$large"
        record $? "$label: large frame through the secure channel, echo of 15000 bytes" "$OUT_DIR/reply" "$OUT_DIR/reply.err"
        burst "$node" "$prefix/service/echo" 2 10
        record $? "$label: burst, 2 senders × 10 echoes of 210 bytes at once, all back in order" "$OUT_DIR"/burst.*
        note "$label: exchanges took $((SECONDS - started)) s"
        return
    fi

    # 16000 bytes of text: a 16 KB frame, near the default max-frame of 16384 on both sides.
    large=$(text 16000)
    send "$node" "$large" "$prefix/service/echo" "$large"
    record $? "$label: large frame, echo of 16000 bytes" "$OUT_DIR/reply" "$OUT_DIR/reply.err"

    large=$(text 15000)
    send "$node" "$large" "$prefix/secure/api/service/echo" "$large"
    record $? "$label: large frame through the secure channel, echo of 15000 bytes" "$OUT_DIR/reply" "$OUT_DIR/reply.err"

    # Over the peer's max-frame: the node's serial sender refuses it (logged, and the request fails with that
    # reason) and the link stays usable (checked last).
    large=$(text 17000)
    if SEND_TIMEOUT=4 send "$node" "" "$prefix/service/echo" "$large"; then false; else
        grep -q 'exceeds the limit' "$LOG" && grep -q 'exceeds the limit' "$OUT_DIR/reply.err"; fi
    record $? "$label: a 17000-byte message (over the peer's max-frame 16384) is refused by the sender" "$OUT_DIR/reply.err" "$LOG"

    burst "$node" "$prefix/service/echo" 4 25
    record $? "$label: burst, 4 senders × 25 echoes of 210 bytes at once, all back in order" "$OUT_DIR"/burst.*

    burst "$node" "$prefix/secure/api/service/echo" 2 10
    record $? "$label: burst through the secure channel, 2 senders × 10 echoes" "$OUT_DIR"/burst.*

    t="still linked after all that at $label"
    send "$node" "${t^^}" "$prefix/service/uppercase" "$t"
    record $? "$label: link still up" "$OUT_DIR/reply" "$OUT_DIR/reply.err"
    note "$label: exchanges took $((SECONDS - started)) s"
}
