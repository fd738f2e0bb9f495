#!/usr/bin/env bash
# perf.sh: the split-process cost measurement of issue 16 (make perf).
#
# Starts `serve` (embedded broker + reference connector) in one process and `load` against it
# in another, then reads each process's CPU (user + system, /proc/<pid>/stat) over a window
# of the load phase and its RSS (/proc/<pid>/status) at the end of the window. Prints CPU per
# call and RSS per endpoint for both processes, the machine's load average, and load's own
# verdict (lost messages must be 0). CPU time, not wall-clock latency: on a shared machine it
# is what stays comparable between runs.
# Also per call: syscalls and bytes read and written, kernel CPU, time spent waiting for a CPU
# and times scheduled. These counts of work barely move with the machine's load, while CPU
# time per call moved by ±20 % between neighbouring runs (docs/PERFORMANCE.md, "Why the
# reference measured more against the light client"): compare clients or builds on them
# first, and on CPU time only over interleaved runs.
#
# Environment (defaults = the issue's measurement):
#   BIN=path        binary to measure (default: build ./cmd/rtcomm-harness into a temp dir)
#   ENDPOINTS=2000 RAMP=500 RATE=150 DURATION=30s SEED=1
#   WARM=5 WINDOW=20 seconds after the call phase starts / seconds measured
#   PROFILE=dir     also write CPU and alloc profiles of both processes into dir (load's heap
#                   profile 1 s after the window, with a goroutine profile: load.alloc.goroutine)
#   LOAD_ARGS=...   extra arguments for load; SERVE_ARGS=... extra arguments for serve
#   SERVE_ENV=...   environment for serve only, e.g. SERVE_ENV='GOGC=200' (load keeps its own GC setting)
set -euo pipefail

ENDPOINTS=${ENDPOINTS:-2000}
RAMP=${RAMP:-500}
RATE=${RATE:-150}
DURATION=${DURATION:-30s}
SEED=${SEED:-1}
WARM=${WARM:-5}
WINDOW=${WINDOW:-20}
PROFILE=${PROFILE:-}
LOAD_ARGS=${LOAD_ARGS:-}
SERVE_ARGS=${SERVE_ARGS:-}
SERVE_ENV=${SERVE_ENV:-}

work=$(mktemp -d)
serve_pid="" load_pid=""
cleanup() {
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
	if [ -n "$serve_pid" ]; then
		kill -INT "$serve_pid" 2>/dev/null || true
		wait "$serve_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${BIN:-}" ]; then
	BIN=$work/rtcomm-harness
	${GO:-go} build -o "$BIN" ./cmd/rtcomm-harness
fi

serve_prof=() load_prof=()
if [ -n "$PROFILE" ]; then
	mkdir -p "$PROFILE"
	serve_prof=(--cpuprofile "$PROFILE/serve.cpu" --memprofile "$PROFILE/serve.alloc")
	# load's heap profile 1 s after the measured window (the held calls of that moment), with
	# a goroutine profile beside it: load.alloc, load.alloc.goroutine
	load_prof=(--cpuprofile "$PROFILE/load.cpu" --memprofile "$PROFILE/load.alloc" --memprofile-after "$((WARM + WINDOW + 1))s")
fi

# serve on a random loopback port; its first lines name the address. The file exists before
# serve starts: the background shell may open it only after the first look below (set -e).
: >"$work/serve.out"
# shellcheck disable=SC2086
env $SERVE_ENV "$BIN" serve --log-level warn --tcp 127.0.0.1:0 --ws off --http off "${serve_prof[@]}" $SERVE_ARGS >"$work/serve.out" 2>&1 &
serve_pid=$!
url=""
for _ in $(seq 100); do
	url=$(sed -n 's/^mqtt tcp: *//p' "$work/serve.out")
	[ -n "$url" ] && break
	kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.out" >&2; exit 2; }
	sleep 0.1
done
[ -n "$url" ] || { echo "perf: serve did not print its address" >&2; exit 2; }

# shellcheck disable=SC2086
"$BIN" load --log-level warn --broker "$url" --no-connector --endpoints "$ENDPOINTS" --ramp-rate "$RAMP" \
	--rate "$RATE" --duration "$DURATION" --seed "$SEED" --out "$work/results" "${load_prof[@]}" $LOAD_ARGS \
	>"$work/load.out" 2>&1 &
load_pid=$!

for _ in $(seq 600); do
	grep -q '^calls:' "$work/load.out" && break
	kill -0 "$load_pid" 2>/dev/null || { cat "$work/load.out" >&2; exit 2; }
	sleep 0.1
done
grep -q '^calls:' "$work/load.out" || { echo "perf: load did not reach its call phase" >&2; exit 2; }
sleep "$WARM"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, clock ticks
systicks() { awk '{print $15}' "/proc/$1/stat"; }    # stime alone (the kernel's share)
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# read and write syscalls and bytes (/proc/<pid>/io, all threads): "syscr syscw rchar wchar"
# scheduler counters summed over the process's threads (/proc/<pid>/task/*/schedstat and
# status): "ns on CPU, ns waiting for a CPU, times scheduled, voluntary and involuntary switches"
sched() {
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{c += $1; w += $2; n += $3} END {printf "%.0f %.0f %.0f ", c, w, n}'
	cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches:/ {v += $2} /^nonvoluntary_ctxt_switches:/ {nv += $2} END {printf "%.0f %.0f\n", v, nv}'
}
io() { awk '/^syscr:/ {r = $2} /^syscw:/ {w = $2} /^rchar:/ {rb = $2} /^wchar:/ {wb = $2} END {print r, w, rb, wb}' "/proc/$1/io"; }
hz=$(getconf CLK_TCK)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
s0=$(ticks "$serve_pid") l0=$(ticks "$load_pid")
ss0=$(systicks "$serve_pid") ls0=$(systicks "$load_pid")
sio0=$(io "$serve_pid") lio0=$(io "$load_pid")
ssc0=$(sched "$serve_pid") lsc0=$(sched "$load_pid")
sleep "$WINDOW"
s1=$(ticks "$serve_pid") l1=$(ticks "$load_pid")
ss1=$(systicks "$serve_pid") ls1=$(systicks "$load_pid")
sio1=$(io "$serve_pid") lio1=$(io "$load_pid")
ssc1=$(sched "$serve_pid") lsc1=$(sched "$load_pid")
srss=$(rss_kb "$serve_pid") lrss=$(rss_kb "$load_pid")
load1=$(cut -d' ' -f1-3 /proc/loadavg)

wait "$load_pid" && load_rc=0 || load_rc=$?
load_pid=""
kill -INT "$serve_pid"
wait "$serve_pid" || true
serve_pid=""

awk -v s="$((s1 - s0))" -v l="$((l1 - l0))" -v hz="$hz" -v rate="$RATE" -v win="$WINDOW" \
	-v srss="$srss" -v lrss="$lrss" -v eps="$ENDPOINTS" -v la0="$load0" -v la1="$load1" 'BEGIN {
	calls = rate * win
	printf "perf: %d endpoints, %g calls/s, window %d s (%d calls expected), load average %s -> %s\n", eps, rate, win, calls, la0, la1
	printf "%-10s %10s %14s %10s %16s\n", "process", "CPU s", "CPU per call", "RSS MB", "RSS per endpoint"
	printf "%-10s %10.2f %11.2f ms %10.1f %13.1f KB\n", "generator", l/hz, l/hz/calls*1000, lrss/1024, lrss/eps
	printf "%-10s %10.2f %11.2f ms %10.1f %13.1f KB\n", "reference", s/hz, s/hz/calls*1000, srss/1024, srss/eps
}'
# Syscalls per call (a packet read or written costs the broker about one each): the
# count, unlike CPU time, does not depend on what else runs on the machine.
awk -v calls="$((RATE * WINDOW))" -v si0="$sio0" -v si1="$sio1" -v li0="$lio0" -v li1="$lio1" 'BEGIN {
	split(si0, a); split(si1, b); split(li0, c); split(li1, d)
	printf "%-10s %12s %12s %14s %14s\n", "per call", "read calls", "write calls", "bytes read", "bytes written"
	printf "%-10s %12.1f %12.1f %14.0f %14.0f\n", "generator", (d[1]-c[1])/calls, (d[2]-c[2])/calls, (d[3]-c[3])/calls, (d[4]-c[4])/calls
	printf "%-10s %12.1f %12.1f %14.0f %14.0f\n", "reference", (b[1]-a[1])/calls, (b[2]-a[2])/calls, (b[3]-a[3])/calls, (b[4]-a[4])/calls
}'
# Waiting for a CPU (others' work on a shared machine) and wake-ups per call: a run whose
# reference waited much longer for a CPU measured a busy machine, not a costlier reference.
awk -v calls="$((RATE * WINDOW))" -v hz="$hz" -v ssys="$((ss1 - ss0))" -v lsys="$((ls1 - ls0))" -v si0="$ssc0" -v si1="$ssc1" -v li0="$lsc0" -v li1="$lsc1" 'BEGIN {
	split(si0, a); split(si1, b); split(li0, c); split(li1, d)
	printf "%-10s %12s %14s %12s %12s %12s\n", "per call", "on CPU", "of it kernel", "waiting CPU", "scheduled", "preempted"
	printf "%-10s %9.2f ms %9.2f ms %9.2f ms %12.1f %12.1f\n", "generator", (d[1]-c[1])/calls/1e6, lsys/hz/calls*1000, (d[2]-c[2])/calls/1e6, (d[3]-c[3])/calls, (d[5]-c[5])/calls
	printf "%-10s %9.2f ms %9.2f ms %9.2f ms %12.1f %12.1f\n", "reference", (b[1]-a[1])/calls/1e6, ssys/hz/calls*1000, (b[2]-a[2])/calls/1e6, (b[3]-a[3])/calls, (b[5]-a[5])/calls
}'
# load's own summary: 0 lost is part of every valid measurement.
grep -E '^(window|messages|deliveries|latency|setup|late|warnings|generator +[0-9]+ late|  )' "$work/load.out" || true
echo "load exit status: $load_rc (2 = invalid, e.g. over 1 % late starts on a busy machine)"
[ -n "$PROFILE" ] && echo "profiles: $PROFILE/{load,serve}.{cpu,alloc}"
# A cheaper call that loses messages is no improvement.
if ! grep -qE '^messages .* 0 lost, 0 in flight' "$work/load.out"; then
	echo "perf: FAIL: messages were lost or left in flight" >&2
	exit 1
fi
exit 0
