#!/usr/bin/env bash
# run.sh - side-by-side benchmark of polygate against mosquitto.
#
# Usage: tests/bench/run.sh <build-dir>     (make bench calls it with build/)
#   <build-dir>/polygate        the broker under test (missing -> "n/a" column)
#   <build-dir>/bench/loadgen   the load generator (built here if needed)
#
# For every scenario (pairs, fanin, fanout) and QoS (0, 1) it starts a fresh
# mosquitto, runs loadgen for BENCH_SECS, stops it, then does the same with
# polygate: only the broker being measured runs. Then the idle test: per
# broker, VmRSS before and after BENCH_IDLE_CONNS idle MQTT connections.
# The ws-* scenarios are the same over MQTT over WebSocket (loadgen --ws:
# GET /mqtt, subprotocol mqtt), against each broker's WebSocket listener
# (mosquitto: "protocol websockets"; polygate: the websocket group, enabled
# only for these runs). Both brokers then also have a plain MQTT listener,
# unused: mosquitto 2.0.11 refuses to start with only a websockets listener.
# The sn-* scenarios measure polygate's MQTT-SN gateway (UDP; mosquitto has
# none, so only polygate runs and the table shows the target instead of a
# ratio). polygate then also has an mqttsn listener, with predefined topic id 1
# = bench/snconnect:
#   sn-fanin    50 MQTT-SN publishers (CONNECT, REGISTER, PUBLISH; QoS 1 with
#               one PUBLISH outstanding each, as MQTT-SN v1.2 clients do) ->
#               one MQTT subscriber over TCP on bench/snfanin/#
#   sn-fanout   one MQTT publisher over TCP -> 50 MQTT-SN subscribers
#               (SUBSCRIBE by topic name; PUBACK each QoS 1 PUBLISH)
#   sn-connect  BENCH_SN_CLIENTS MQTT-SN clients each CONNECT and PUBLISH once
#               (QoS 1, predefined topic id), at most 200 between CONNECT and
#               PUBACK at once; time from the first CONNECT to the last PUBACK
# For every polygate run of these, lines polygate logged meanwhile are noted.
# Prints the tables. Exit status: 0, even when polygate is missing or fails;
# nonzero when mosquitto (the reference) or the harness itself fails.
#
# Environment:
#   BENCH_SECS=10                          measured seconds per run (+1 s warm-up)
#   BENCH_SCENARIOS="pairs fanin fanout idle ws-pairs ws-fanin ws-fanout ws-idle
#                    sn-fanin sn-fanout sn-connect"
#                                          an entry NAME runs both QoS, NAME:Q one
#   BENCH_IDLE_CONNS=10000                 0 skips the idle tests (idle, ws-idle)
#   BENCH_WS_IDLE_TARGET_KB=6              ws-idle: polygate above this is noted
#   BENCH_SN_CLIENTS=10000                 sn-connect's clients (0 skips it)
#   BENCH_SN_FANIN_TARGET_Q0=100000        sn-fanin targets, msgs/s (QoS 0 also
#   BENCH_SN_FANIN_TARGET_Q1=80000           needs no loss)
#   BENCH_SN_CONNECT_TARGET_SECS=10        sn-connect: all clients within this
#   BENCH_KEEP=1                           keep the work dir (configs, logs, RESULT lines)
set -u

BENCH_SECS=${BENCH_SECS:-10}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-pairs fanin fanout idle ws-pairs ws-fanin ws-fanout ws-idle sn-fanin sn-fanout sn-connect}
BENCH_IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
BENCH_WS_IDLE_TARGET_KB=${BENCH_WS_IDLE_TARGET_KB:-6}
BENCH_SN_CLIENTS=${BENCH_SN_CLIENTS:-10000}
BENCH_SN_FANIN_TARGET_Q0=${BENCH_SN_FANIN_TARGET_Q0:-100000}
BENCH_SN_FANIN_TARGET_Q1=${BENCH_SN_FANIN_TARGET_Q1:-80000}
BENCH_SN_CONNECT_TARGET_SECS=${BENCH_SN_CONNECT_TARGET_SECS:-10}

HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 <build-dir>" >&2; exit 2; }
BUILD=$(mkdir -p "$1" && cd "$1" && pwd) || exit 2
LOADGEN=$BUILD/bench/loadgen
POLYGATE=$BUILD/polygate
WORK=$(mktemp -d /tmp/polygate-bench.XXXXXX)

BROKER_PID=""
BROKER_PORT="" # where loadgen connects: the MQTT listener, or the WebSocket one
MQTT_PORT=""
SN_PORT="" # polygate's MQTT-SN (UDP) listener, for the sn-* scenarios
LOG_MARK=0 # lines in polygate.log before the current polygate started
SN_ERRORS="" # set by measure_rate for sn-*: loadgen's error counters, polygate's log
START_ERROR=""
BROKER_STATUS=0
LOADGEN_PID=""

say() { echo "bench: $*" >&2; }

die() {
    say "FAILED: $*"
    exit 1
}

cleanup() {
    [ -n "$LOADGEN_PID" ] && kill "$LOADGEN_PID" 2>/dev/null
    stop_broker
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- environment ----

raise_fd_limit() {
    local want=$((BENCH_IDLE_CONNS + 1024))
    [ "$BENCH_SN_CLIENTS" -gt "$BENCH_IDLE_CONNS" ] && want=$((BENCH_SN_CLIENTS + 1024))
    [ "$(ulimit -n)" = unlimited ] && return
    [ "$(ulimit -n)" -ge "$want" ] && return
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((want - 960)) ]; then
        die "open-file limit $(ulimit -n) is too low for $((want - 1024)) connections/sockets"
    fi
}

build_loadgen() {
    command -v mosquitto >/dev/null || die "mosquitto not installed (apt-get install -y mosquitto)"
    make --no-print-directory -s -C "$HERE" BUILD="$BUILD/bench" >&2 || die "building loadgen"
}

# ---- ports and processes ----

# A port nothing on this host uses (TCP or UDP), outside the ephemeral range
# (and not $1).
free_port() {
    local port hex
    while :; do
        port=$((20000 + RANDOM % 12000))
        [ "$port" = "${1:-}" ] && continue
        hex=$(printf '%04X' "$port")
        awk -v h=":$hex" 'index($2, h) == length($2) - 4 { found = 1 } END { exit !found }' \
            /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null ||
            { echo "$port"; return; }
    done
}

is_udp_bound() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h=":$hex" 'index($2, h) == length($2) - 4 { found = 1 } END { exit !found }' \
        /proc/net/udp /proc/net/udp6 2>/dev/null
}

# Polls until UDP port $1 is bound; fails if process $2 exits or after 10 s.
wait_udp_port() {
    local _
    for _ in $(seq 1 200); do
        kill -0 "$2" 2>/dev/null || return 1
        is_udp_bound "$1" && return 0
        sleep 0.05
    done
    return 1
}

is_listening() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h=":$hex" '$4 == "0A" && index($2, h) == length($2) - 4 { found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Polls until port $1 listens; fails if process $2 exits or after 10 s.
wait_port() {
    local _
    for _ in $(seq 1 200); do
        kill -0 "$2" 2>/dev/null || return 1
        is_listening "$1" && return 0
        sleep 0.05
    done
    return 1
}

stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    kill "$BROKER_PID" 2>/dev/null
    local _
    for _ in $(seq 1 100); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    BROKER_STATUS=$?
    BROKER_PID=""
}

# exit_desc STATUS: "exit status 1", or "killed by signal 11 (SEGV)".
exit_desc() {
    if [ "$1" -gt 128 ]; then
        echo "killed by signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null))"
    else
        echo "exit status $1"
    fi
}

# write_mosquitto_conf MQTT_PORT [WS_PORT]
write_mosquitto_conf() {
    {
        echo "listener $1 127.0.0.1"
        echo "max_connections -1"
        if [ -n "${2:-}" ]; then
            echo "listener $2 127.0.0.1"
            echo "protocol websockets"
            echo "max_connections -1"
        fi
        cat <<EOF
allow_anonymous true
persistence false
max_queued_messages 1000
max_inflight_messages 32
log_type error
log_dest stderr
EOF
    } >"$WORK/mosquitto.conf"
}

# write_polygate_conf MQTT_PORT [WS_PORT] [SN_PORT]
write_polygate_conf() {
    local ws='websocket = { enabled = false; };' sn='mqttsn = { enabled = false; };'
    [ -n "${2:-}" ] &&
        ws="websocket = { enabled = true; listeners = ( { bind = \"127.0.0.1\"; port = $2; } ); };"
    [ -n "${3:-}" ] &&
        sn="mqttsn = { enabled = true; listeners = ( { bind = \"127.0.0.1\"; port = $3; } );
           predefined_topics = ( { id = 1; topic = \"bench/snconnect\"; } ); };"
    cat >"$WORK/polygate.conf" <<EOF
broker = { max_inflight = 32; max_queued_messages = 1000; sys_interval = 0; };
log = { level = "warning"; };
mqtt = { enabled = true; listeners = ( { bind = "127.0.0.1"; port = $1; } ); };
$ws
$sn
coap = { enabled = false; };
stomp = { enabled = false; };
http = { enabled = false; };
EOF
}

# start_broker mosquitto|polygate tcp|ws|sn: sets BROKER_PID, MQTT_PORT and
# BROKER_PORT (the MQTT port, or for ws the WebSocket port), for sn SN_PORT
# (polygate's MQTT-SN UDP port; polygate only).
start_broker() {
    local ws_port=""
    START_ERROR="did not start"
    MQTT_PORT=$(free_port)
    BROKER_PORT=$MQTT_PORT
    SN_PORT=""
    if [ "$2" = ws ]; then
        ws_port=$(free_port "$MQTT_PORT")
        BROKER_PORT=$ws_port
    fi
    [ "$2" = sn ] && SN_PORT=$(free_port "$MQTT_PORT")
    if [ "$1" = mosquitto ]; then
        write_mosquitto_conf "$MQTT_PORT" "$ws_port"
        mosquitto -c "$WORK/mosquitto.conf" >>"$WORK/mosquitto.log" 2>&1 &
    else
        [ -x "$POLYGATE" ] || return 1
        write_polygate_conf "$MQTT_PORT" "$ws_port" "$SN_PORT"
        LOG_MARK=0
        [ -f "$WORK/polygate.log" ] && LOG_MARK=$(wc -l <"$WORK/polygate.log")
        "$POLYGATE" -c "$WORK/polygate.conf" >>"$WORK/polygate.log" 2>&1 &
    fi
    BROKER_PID=$!
    if ! wait_port "$MQTT_PORT" "$BROKER_PID"; then
        stop_broker
        return 1
    fi
    if ! wait_port "$BROKER_PORT" "$BROKER_PID"; then
        START_ERROR="did not start (no WebSocket listener on port $BROKER_PORT)"
        stop_broker
        return 1
    fi
    if [ -n "$SN_PORT" ] && ! wait_udp_port "$SN_PORT" "$BROKER_PID"; then
        START_ERROR="did not start (no MQTT-SN listener on UDP port $SN_PORT)"
        stop_broker
        return 1
    fi
}

# What polygate logged since it was started last (log level warning: anything
# is worth a note): "" or "polygate logged N lines, e.g. '...'; ".
new_log_note() {
    local n first
    n=$(($(wc -l <"$WORK/polygate.log") - LOG_MARK))
    [ "$n" -gt 0 ] || return 0
    first=$(tail -n "+$((LOG_MARK + 1))" "$WORK/polygate.log" | head -n 1 | cut -c1-120 | tr '|' '/')
    echo "polygate logged $n lines, first: '$first'; "
}

log_tail() {
    [ -s "$WORK/$1.log" ] && tail -n 5 "$WORK/$1.log" | sed 's/^/    /' >&2
}

# A broker could not be measured: fatal for mosquitto, "n/a" for polygate.
broker_failed() {
    local broker=$1 what=$2
    say "$broker: $what"
    log_tail "$broker"
    log_tail loadgen
    [ "$broker" = mosquitto ] && die "mosquitto (the reference) failed: $what"
    [ -x "$POLYGATE" ] && NOTES="$NOTES polygate $what;"
}

# ---- measurements ----

field() { # field NAME "RESULT ... NAME=value ..."
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

# transport SCENARIO: "ws" for the ws-* scenarios, "sn" for sn-*, else "tcp".
transport() {
    case "$1" in ws-*) echo ws ;; sn-*) echo sn ;; *) echo tcp ;; esac
}

# loadgen_args SCENARIO: loadgen's scenario and transport options.
loadgen_args() {
    case "$1" in
    ws-*) echo "-s ${1#ws-} --ws" ;;
    sn-*) echo "-s $1 --sn-port $SN_PORT" ;;
    *) echo "-s $1" ;;
    esac
}

# measure_rate BROKER SCENARIO QOS: sets MEASURED to "rate lost expected", or "".
# (Globals rather than $(...): brokers must be started by this shell so that
# the EXIT trap can stop them.)
measure_rate() {
    local broker=$1 sc=$2 qos=$3 line alive=1 t0 ticks0 cpu
    MEASURED=""
    start_broker "$broker" "$(transport "$sc")" || {
        broker_failed "$broker" "$sc: $START_ERROR"
        return
    }
    t0=$(date +%s.%N)
    ticks0=$(cpu_ticks "$BROKER_PID")
    echo "== $broker $sc qos $qos" >>"$WORK/loadgen.log"
    # In the background + wait, so that a signal reaches the EXIT trap at once.
    # shellcheck disable=SC2046 # loadgen_args is meant to split
    timeout $((BENCH_SECS + 90)) "$LOADGEN" -p "$BROKER_PORT" $(loadgen_args "$sc") -q "$qos" \
        -t "$BENCH_SECS" --setup-timeout 30 --broker-pid "$BROKER_PID" \
        >"$WORK/run.out" 2>>"$WORK/loadgen.log" &
    LOADGEN_PID=$!
    wait "$LOADGEN_PID"
    LOADGEN_PID=""
    line=$(grep '^RESULT' "$WORK/run.out")
    kill -0 "$BROKER_PID" 2>/dev/null || alive=0
    [ "$alive" = 1 ] && cpu=$(cpu_percent "$BROKER_PID" "$ticks0" "$t0")
    stop_broker
    echo "$broker $line" >>"$WORK/results.txt"
    if [ -z "$line" ] || [ "$alive" = 0 ]; then
        local why="loadgen error"
        [ "$alive" = 0 ] && why="crashed, $(exit_desc "$BROKER_STATUS")"
        broker_failed "$broker" "$sc qos $qos: $why"
        return
    fi
    local bcpu
    bcpu=$(field broker_cpu "$line")
    if [ -n "$bcpu" ]; then
        bcpu="$bcpu% of one core while measured ($cpu% incl. setup and drain)"
    else
        bcpu="$cpu% of one core (incl. setup and drain)"
    fi
    say "$broker $sc qos $qos: $(field rate "$line") msgs/s, lost $(field lost "$line")," \
        "broker CPU $bcpu, loadgen CPU $(field lg_cpu "$line")%," \
        "interrupts (loopback delivery) $(field irq_cpu "$line")%"
    MEASURED="$(field rate "$line") $(field lost "$line") $(field expected "$line")"
    SN_ERRORS=""
    if [ "$(transport "$sc")" = sn ]; then
        local f v
        for f in sn_retries refused unknown_topic bad_qos sn_malformed stalls ooo; do
            v=$(field "$f" "$line")
            [ -n "$v" ] && [ "$v" != 0 ] && SN_ERRORS="$SN_ERRORS$f=$v; "
        done
        SN_ERRORS="$SN_ERRORS$(new_log_note)$(cpu_note "$line")"
    fi
}

# cpu_note "RESULT ...": "CPU polygate 97% loadgen 60%; ", a warning when
# loadgen itself came near a full core (then it may be what limits the rate),
# and what other processes on the host took meanwhile, when that is notable.
cpu_note() {
    local b l h
    b=$(field broker_cpu "$1")
    l=$(field lg_cpu "$1")
    h=$(field host_cpu "$1")
    printf '%s' "CPU polygate ${b:-?}% loadgen ${l:-?}%; "
    [ -n "$l" ] && [ "$l" -ge 90 ] && printf '%s' "loadgen near a full core: it may limit the rate; "
    [ -n "$h" ] && [ -n "$b" ] && [ -n "$l" ] && [ $((h - b - l)) -ge 15 ] &&
        printf '%s' "other processes took $((h - b - l))% of a core meanwhile; "
    return 0
}

cpu_ticks() { # utime + stime of process $1, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null
}

cpu_percent() { # cpu_percent PID TICKS_BEFORE TIME_BEFORE
    awk -v t1="$(cpu_ticks "$1")" -v t0="$2" -v s0="$3" -v s1="$(date +%s.%N)" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", 100 * (t1 - t0) / hz / (s1 - s0) }'
}

vm_rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# RSS after it has stopped moving (two equal readings 0.2 s apart, at most 3 s).
settled_rss_kb() {
    local prev cur _
    prev=$(vm_rss_kb "$1")
    for _ in $(seq 1 15); do
        sleep 0.2
        cur=$(vm_rss_kb "$1")
        [ "$cur" = "$prev" ] && break
        prev=$cur
    done
    echo "$cur"
}

# Polls the idle loadgen's output for IDLE_READY; fails if it exits or after 120 s.
wait_idle_ready() {
    local _
    for _ in $(seq 1 1200); do
        grep -q '^IDLE_READY' "$WORK/idle.out" && return 0
        kill -0 "$LOADGEN_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# measure_idle BROKER tcp|ws: sets MEASURED to KB of RSS per idle connection, or "".
measure_idle() {
    local broker=$1 tr=$2 before after="" ok=1 alive=1 dropped wsopt="" what=idle why
    MEASURED=""
    if [ "$tr" = ws ]; then
        wsopt=--ws
        what="ws-idle"
    fi
    start_broker "$broker" "$tr" || { broker_failed "$broker" "$what: $START_ERROR"; return; }
    before=$(settled_rss_kb "$BROKER_PID")
    echo "== $broker $what" >>"$WORK/loadgen.log"
    # shellcheck disable=SC2086 # $wsopt is empty or one word
    "$LOADGEN" -p "$BROKER_PORT" -s idle $wsopt -n "$BENCH_IDLE_CONNS" --hold 600 \
        --setup-timeout 110 >"$WORK/idle.out" 2>"$WORK/idle.err" &
    LOADGEN_PID=$!
    wait_idle_ready || ok=0
    [ "$ok" = 1 ] && after=$(settled_rss_kb "$BROKER_PID")
    kill -0 "$BROKER_PID" 2>/dev/null || { ok=0; alive=0; }
    kill "$LOADGEN_PID" 2>/dev/null
    wait "$LOADGEN_PID" 2>/dev/null
    LOADGEN_PID=""
    cat "$WORK/idle.err" >>"$WORK/loadgen.log"
    stop_broker
    dropped=$(field failed "$(grep '^RESULT' "$WORK/idle.out")")
    if [ "$ok" = 1 ] && [ -n "$dropped" ] && [ "$dropped" != 0 ]; then
        NOTES="$NOTES $broker closed $dropped $what connections while measured;"
    fi
    if [ "$ok" = 0 ] || [ -z "$after" ]; then
        why="$(field conns "$(grep '^RESULT' "$WORK/idle.out")") of $BENCH_IDLE_CONNS connected"
        why="$why, $(sed -n 's/.*connections failed, \(first: .*\)/\1/p' "$WORK/idle.err" | tail -n 1)"
        [ "$alive" = 0 ] && why="crashed, $(exit_desc "$BROKER_STATUS") ($why)"
        broker_failed "$broker" "$what test: $why"
        return
    fi
    say "$broker $what: VmRSS $before kB -> $after kB with $BENCH_IDLE_CONNS connections"
    MEASURED=$(awk -v a="$after" -v b="$before" -v n="$BENCH_IDLE_CONNS" \
        'BEGIN { printf "%.2f", (a - b) / n }')
}

# measure_sn_connect: polygate only. Sets MEASURED to "ok secs failed p50 p99
# burst" (burst: clients between CONNECT and PUBACK at once) and SN_ERRORS, or
# MEASURED="".
measure_sn_connect() {
    local line alive=1 t0 ticks0 cpu
    MEASURED=""
    SN_ERRORS=""
    start_broker polygate sn || {
        broker_failed polygate "sn-connect: $START_ERROR"
        return
    }
    t0=$(date +%s.%N)
    ticks0=$(cpu_ticks "$BROKER_PID")
    echo "== polygate sn-connect" >>"$WORK/loadgen.log"
    timeout 150 "$LOADGEN" -p "$MQTT_PORT" -s sn-connect --sn-port "$SN_PORT" \
        -n "$BENCH_SN_CLIENTS" --setup-timeout 120 --broker-pid "$BROKER_PID" \
        >"$WORK/run.out" 2>>"$WORK/loadgen.log" &
    LOADGEN_PID=$!
    wait "$LOADGEN_PID"
    LOADGEN_PID=""
    line=$(grep '^RESULT' "$WORK/run.out")
    kill -0 "$BROKER_PID" 2>/dev/null || alive=0
    [ "$alive" = 1 ] && cpu=$(cpu_percent "$BROKER_PID" "$ticks0" "$t0")
    stop_broker
    echo "polygate $line" >>"$WORK/results.txt"
    if [ -z "$line" ] || [ "$alive" = 0 ]; then
        local why="loadgen error"
        [ "$alive" = 0 ] && why="crashed, $(exit_desc "$BROKER_STATUS")"
        broker_failed polygate "sn-connect: $why"
        return
    fi
    say "polygate sn-connect: $(field ok "$line") of $BENCH_SN_CLIENTS clients in" \
        "$(field secs "$line") s, p50 $(field p50_ms "$line") ms, p99 $(field p99_ms "$line") ms," \
        "broker CPU $(field broker_cpu "$line")% of one core meanwhile ($cpu% incl. setup)," \
        "loadgen CPU $(field lg_cpu "$line")%, interrupts $(field irq_cpu "$line")%"
    local f v
    for f in retries refused missing dup; do
        v=$(field "$f" "$line")
        [ -n "$v" ] && [ "$v" != 0 ] && SN_ERRORS="$SN_ERRORS$f=$v; "
    done
    SN_ERRORS="$SN_ERRORS$(new_log_note)$(cpu_note "$line")"
    MEASURED="$(field ok "$line") $(field secs "$line") $(field failed "$line")"
    MEASURED="$MEASURED $(field p50_ms "$line") $(field p99_ms "$line") $(field burst "$line")"
}

# ---- report ----

ratio() { # ratio MOSQUITTO_RATE POLYGATE_RATE
    if [ -z "$1" ] || [ -z "$2" ]; then
        echo n/a
        return
    fi
    awk -v m="$1" -v p="$2" 'BEGIN { if (m > 0) printf "%.2f", p / m; else print "n/a" }'
}

# lost_note BROKER "rate lost expected": "mosquitto lost 12 of 3400 (0.35%); " if lost > 0.
lost_note() {
    local lost expected
    read -r _ lost expected <<<"$2"
    [ -n "$lost" ] && [ "$lost" != 0 ] || return 0
    awk -v b="$1" -v l="$lost" -v e="$expected" \
        'BEGIN { printf "%s lost %d of %d (%.2f%%); ", b, l, e, (e > 0 ? 100 * l / e : 0) }'
}

RATE_ROWS=()
IDLE_ROWS=()
SN_CONNECT_ROWS=()
NOTES=""
MEASURED=""
LOAD_BEFORE=""

run_rate_row() {
    local sc=$1 qos=$2 mq pg mq_rate pg_rate note
    measure_rate mosquitto "$sc" "$qos"
    mq=$MEASURED
    [ -n "$mq" ] || die "mosquitto $sc qos $qos gave no result"
    pg=""
    if [ -x "$POLYGATE" ]; then
        measure_rate polygate "$sc" "$qos"
        pg=$MEASURED
    fi
    mq_rate=${mq%% *}
    pg_rate=${pg%% *}
    note="$(lost_note mosquitto "$mq")$(lost_note polygate "$pg")"
    RATE_ROWS+=("$sc|$qos|$mq_rate|${pg_rate:-n/a}|$(ratio "$mq_rate" "$pg_rate")|${note%; }")
}

# sn_target SCENARIO QOS: the target rate, or "" when the issue sets none.
sn_target() {
    case "$1:$2" in
    sn-fanin:0) echo "$BENCH_SN_FANIN_TARGET_Q0" ;;
    sn-fanin:1) echo "$BENCH_SN_FANIN_TARGET_Q1" ;;
    esac
}

# MQTT-SN rows: polygate only (mosquitto has no MQTT-SN), the target for a ratio.
run_sn_rate_row() {
    local sc=$1 qos=$2 pg="" rate="" target note="" lost
    target=$(sn_target "$sc" "$qos")
    if [ -x "$POLYGATE" ]; then
        measure_rate polygate "$sc" "$qos"
        pg=$MEASURED
    fi
    rate=${pg%% *}
    read -r _ lost _ <<<"$pg"
    note="$(lost_note polygate "$pg")"
    if [ -n "$pg" ] && [ -n "$target" ]; then
        if awk -v r="$rate" -v t="$target" 'BEGIN { exit !(r < t) }'; then
            note="${note}BELOW target; "
            NOTES="$NOTES polygate $sc qos $qos $rate msgs/s < $target target;"
        elif [ "$qos" = 0 ] && [ "${lost:-0}" != 0 ]; then
            note="${note}rate met but target needs no loss; "
            NOTES="$NOTES polygate $sc qos $qos lost $lost messages;"
        else
            note="${note}target met; "
        fi
    fi
    [ -n "$pg" ] && note="$note$SN_ERRORS"
    RATE_ROWS+=("$sc|$qos|n/a|${rate:-n/a}|${target:+>= $target}|${note%; }")
}

run_sn_connect_row() {
    local ok secs failed p50 p99 burst note="" target=$BENCH_SN_CONNECT_TARGET_SECS
    [ -x "$POLYGATE" ] || {
        SN_CONNECT_ROWS+=("?|n/a|n/a|n/a|")
        return
    }
    measure_sn_connect
    if [ -z "$MEASURED" ]; then
        SN_CONNECT_ROWS+=("?|n/a|n/a|<= $target s|failed, see problems")
        return
    fi
    read -r ok secs failed p50 p99 burst <<<"$MEASURED"
    if [ "$ok" != "$BENCH_SN_CLIENTS" ] ||
        awk -v s="$secs" -v t="$target" 'BEGIN { exit !(s > t) }'; then
        note="BELOW target; "
        NOTES="$NOTES polygate sn-connect: $ok of $BENCH_SN_CLIENTS in $secs s (target all in $target s);"
    else
        note="target met; "
    fi
    note="${note}per client p50 $p50 ms, p99 $p99 ms; $SN_ERRORS"
    [ "$failed" != 0 ] && note="$note$failed failed; "
    SN_CONNECT_ROWS+=("$burst|$ok/$BENCH_SN_CLIENTS|$secs|<= $target s|${note%; }")
}

# run_idle_row tcp|ws
run_idle_row() {
    local tr=$1 mq pg label="MQTT/TCP" note=""
    [ "$tr" = ws ] && label="MQTT/WebSocket"
    measure_idle mosquitto "$tr"
    mq=$MEASURED
    [ -n "$mq" ] || die "mosquitto $label idle test gave no result"
    pg=""
    if [ -x "$POLYGATE" ]; then
        measure_idle polygate "$tr"
        pg=$MEASURED
    fi
    if [ "$tr" = ws ]; then
        note="polygate target <= $BENCH_WS_IDLE_TARGET_KB KB"
        if [ -n "$pg" ] &&
            awk -v p="$pg" -v t="$BENCH_WS_IDLE_TARGET_KB" 'BEGIN { exit !(p > t) }'; then
            note="polygate ABOVE the $BENCH_WS_IDLE_TARGET_KB KB target"
            NOTES="$NOTES polygate ws-idle $pg KB per connection > $BENCH_WS_IDLE_TARGET_KB KB target;"
        fi
    fi
    IDLE_ROWS+=("$BENCH_IDLE_CONNS $label conns|$mq|${pg:-n/a}|$note")
}

print_tables() {
    local row sc qos mq pg r note what burst ok secs target
    echo
    echo "polygate vs mosquitto $(mosquitto -h 2>/dev/null | awk 'NR == 1 { print $3 }')," \
        "${BENCH_SECS}s per run, payload 64 B, loopback, $(nproc) cores," \
        "load average before: $LOAD_BEFORE"
    echo
    if [ "${#RATE_ROWS[@]}" -gt 0 ]; then
        printf '%-9s | %-3s | %16s | %15s | %14s | %s\n' scenario qos "mosquitto msgs/s" \
            "polygate msgs/s" "ratio / target" notes
        for row in "${RATE_ROWS[@]}"; do
            IFS='|' read -r sc qos mq pg r note <<<"$row"
            printf '%-9s | %-3s | %16s | %15s | %14s | %s\n' "$sc" "$qos" "$mq" "$pg" "$r" "$note"
        done
    fi
    if [ "${#SN_CONNECT_ROWS[@]}" -gt 0 ]; then
        echo
        printf '%-34s | %13s | %8s | %8s | %s\n' "sn-connect: CONNECT + QoS 1 PUBLISH" \
            "polygate ok" "secs" target notes
        for row in "${SN_CONNECT_ROWS[@]}"; do
            IFS='|' read -r burst ok secs target note <<<"$row"
            printf '%-34s | %13s | %8s | %8s | %s\n' \
                "$BENCH_SN_CLIENTS clients, <= $burst at a time" "$ok" "$secs" "$target" "$note"
        done
        echo "(secs: from the first CONNECT to the last PUBACK)"
    fi
    if [ "${#IDLE_ROWS[@]}" -gt 0 ]; then
        echo
        printf '%-31s | %12s | %11s | %s\n' "idle RSS per connection" "mosquitto KB" \
            "polygate KB" notes
        for row in "${IDLE_ROWS[@]}"; do
            IFS='|' read -r what mq pg note <<<"$row"
            printf '%-31s | %12s | %11s | %s\n' "$what" "$mq" "$pg" "$note"
        done
    fi
    [ -x "$POLYGATE" ] || echo "(polygate: $POLYGATE not found)"
    [ -n "$NOTES" ] && echo "problems:$NOTES"
    return 0
}

main() {
    local entry sc qos
    LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
    raise_fd_limit
    build_loadgen
    for entry in ${BENCH_SCENARIOS//,/ }; do
        sc=${entry%%:*}
        case "$sc" in
        pairs | fanin | fanout | ws-pairs | ws-fanin | ws-fanout) ;;
        idle | ws-idle)
            [ "$BENCH_IDLE_CONNS" -gt 0 ] && run_idle_row "$(transport "$sc")"
            continue
            ;;
        sn-fanin | sn-fanout)
            if [ "$entry" = "$sc" ]; then
                run_sn_rate_row "$sc" 0
                run_sn_rate_row "$sc" 1
            else
                run_sn_rate_row "$sc" "${entry#*:}"
            fi
            continue
            ;;
        sn-connect)
            [ "$BENCH_SN_CLIENTS" -gt 0 ] && run_sn_connect_row
            continue
            ;;
        *) die "unknown scenario '$sc' in BENCH_SCENARIOS" ;;
        esac
        if [ "$entry" = "$sc" ]; then
            run_rate_row "$sc" 0
            run_rate_row "$sc" 1
        else
            qos=${entry#*:}
            run_rate_row "$sc" "$qos"
        fi
    done
    print_tables
}

main
