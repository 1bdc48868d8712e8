#!/usr/bin/env bash
# Side-by-side runs of cometbox, Nchan and Pushpin on this machine: the same
# workloads back to back, each server fresh for each run, the server pinned
# to one core and the load generator to another, so ratios come from one
# sitting. Writes one JSON report per run, a markdown table and an SVG chart.
# Beside them runs the floor (`cometbench floor`): a bare send(2) loop over
# the held sockets, the least any server could do for the same deliveries.
#
#   cmd/cometbench/compare.sh                 # everything, about 5-10 minutes
#   WS=1 cmd/cometbench/compare.sh            # also WebSocket fan-out
#   SERVERS="cometbox nchan" N=5000 cmd/cometbench/compare.sh
#
# Settings (environment):
#   N            subscribers per run (default 10000; one client process holds
#                up to ~19,900 sockets, PROCS spreads more over several)
#   PROCS        client processes (default 1)
#   MESSAGES     messages per fan-out run (default 100)
#   ROUNDS       runs of every workload on every server, taken in turns
#                (default 1); the table shows each server's median run and
#                the ratios round by round
#   WINDOW       messages in flight, not yet at every subscriber (default 1:
#                each message is published once the previous one reached
#                every subscriber, so latency is the spread of one fan-out)
#   SERVERS      which servers (default "cometbox nchan pushpin floor")
#   WORKLOADS    which workloads (default "idle fanout-100B fanout-4KiB";
#                WS=1 adds ws-idle and ws-100B)
#   SERVER_CPU, CLIENT_CPU   cores for taskset (default 0 and 1)
#   OUT          results directory (default /tmp/cometbench-<UTC time>)
#   RUN_TIMEOUT  seconds one run may take before it is stopped (default 240)
#   NO_INSTALL=1 do not apt-get install missing servers
#
# Everything listens on 127.0.0.1 only: cometbox :18080, Nchan :18081,
# Pushpin :17999 (control API :5561, zmq :5560-5563), its origin :19001,
# the floor :18082.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-10000}
PROCS=${PROCS:-1}
MESSAGES=${MESSAGES:-100}
WINDOW=${WINDOW:-1}
ROUNDS=${ROUNDS:-1}
SERVERS=${SERVERS:-"cometbox nchan pushpin floor"}
WORKLOADS=${WORKLOADS:-"idle fanout-100B fanout-4KiB"}
if [[ ${WS:-0} == 1 ]]; then WORKLOADS="$WORKLOADS ws-idle ws-100B"; fi
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}
OUT=${OUT:-/tmp/cometbench-$(date -u +%Y%m%dT%H%M%SZ)}
BENCH=$ROOT/testdata/bench
BIN=$OUT/bin
RUNDIR=$OUT/run

log() { printf '%s compare: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- install --------------------------------------------------------------
need_install() {
	! command -v nginx >/dev/null || [[ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]] ||
		! command -v pushpin >/dev/null || ! command -v zurl >/dev/null || ! command -v taskset >/dev/null
}
if need_install; then
	if [[ ${NO_INSTALL:-0} == 1 ]]; then
		echo "compare: nginx + libnginx-mod-nchan, pushpin, zurl and taskset are needed" >&2
		exit 1
	fi
	log "installing nginx, libnginx-mod-nchan, pushpin, zurl from Debian"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx libnginx-mod-nchan pushpin zurl util-linux >/dev/null
fi

# The table is made of every report in OUT: reports of an earlier sitting
# there would be mixed into this one's rows and rounds.
if compgen -G "$OUT/*.json" >/dev/null; then
	echo "compare: $OUT already holds reports of another sitting; choose a new OUT" >&2
	exit 1
fi
mkdir -p "$BIN" "$RUNDIR"
log "results in $OUT"
log "building cmd/caddy and cmd/cometbench"
(cd "$ROOT" && go build -o "$BIN/caddy" ./cmd/caddy && go build -o "$BIN/cometbench" ./cmd/cometbench)

# A process may hold at most the hard limit of descriptors.
ulimit -n "$(ulimit -Hn)"

# --- servers --------------------------------------------------------------
# Every process started here is recorded, and stopped by its PID.
STARTED=()
SERVER_PIDS=""

stop_all() {
	local pid
	for pid in "${STARTED[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${STARTED[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	STARTED=()
	SERVER_PIDS=""
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

# port_free PORT: fails when something already listens on 127.0.0.1:PORT.
# Caddy listens with SO_REUSEPORT, so a leftover server would silently take
# half of the connections and the run would measure two processes.
port_free() {
	if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
		echo "compare: something already listens on 127.0.0.1:$1; stop it first" >&2
		return 1
	fi
}

# start NAME LOG CMD...: start CMD on the server core, in the background.
start() {
	local name=$1 logf=$2
	shift 2
	taskset -c "$SERVER_CPU" "$@" >"$logf" 2>&1 &
	STARTED+=("$!")
	LAST_PID=$!
	log "started $name (pid $LAST_PID)"
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT, 20 s at most.
wait_port() {
	local port=$1
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "compare: nothing listens on 127.0.0.1:$port" >&2
	return 1
}

start_cometbox() {
	port_free 18080
	start caddy "$RUNDIR/caddy.log" "$BIN/caddy" run --config "$BENCH/cometbox.Caddyfile" --adapter caddyfile
	SERVER_PIDS=$LAST_PID
	wait_port 18080
}

start_nchan() {
	local prefix=$RUNDIR/nginx
	mkdir -p "$prefix/tmp"
	port_free 18081
	start nginx "$RUNDIR/nginx.log" nginx -p "$prefix" -c "$BENCH/nchan.conf" -g 'daemon off;'
	SERVER_PIDS=$LAST_PID # the master; its worker is measured as its child
	wait_port 18081
}

start_pushpin() {
	mkdir -p /var/run/zurl /var/run/pushpin /tmp/cometbench-pushpin-log
	port_free 17999
	port_free 19001
	start zurl "$RUNDIR/zurl.log" zurl --config="$BENCH/zurl.conf"
	local zurl=$LAST_PID
	start origin "$RUNDIR/origin.log" "$BIN/cometbench" origin -listen 127.0.0.1:19001
	wait_port 19001
	start pushpin "$RUNDIR/pushpin.log" pushpin --config "$BENCH/pushpin.conf" --route "* 127.0.0.1:19001"
	# The runner and what it starts (condure, proxy, handler), and zurl,
	# through which the proxy reaches the origin. The origin stands for the
	# application and is not counted, as the PHP app is not for cometbox.
	SERVER_PIDS="$LAST_PID,$zurl"
	wait_port 17999
	wait_port 5561
	sleep 1 # the handler subscribes to the proxy's stats after it listens
}

start_floor() {
	port_free 18082
	start floor "$RUNDIR/floor.log" "$BIN/cometbench" floor -listen 127.0.0.1:18082
	SERVER_PIDS=$LAST_PID
	wait_port 18082
}

# --- workloads ------------------------------------------------------------
# workload_args NAME: the cometbench flags of one workload.
workload_args() {
	case $1 in
	idle) echo "-transport sse -messages 0 -settle 5s" ;;
	fanout-100B) echo "-transport sse -messages $MESSAGES -size 100 -window $WINDOW" ;;
	fanout-4KiB) echo "-transport sse -messages $MESSAGES -size 4096 -window $WINDOW" ;;
	ws-idle) echo "-transport ws -messages 0 -settle 5s" ;;
	ws-100B) echo "-transport ws -messages $MESSAGES -size 100 -window $WINDOW" ;;
	*)
		echo "compare: unknown workload $1" >&2
		return 1
		;;
	esac
}

{
	echo "date: $(date -u +%FT%TZ)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') × $(nproc)"
	echo "kernel: $(uname -r)"
	echo "go: $(go version)"
	echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null)"
	echo "pushpin: $(dpkg-query -W -f='${Version}' pushpin 2>/dev/null)"
	echo "server cpu: $SERVER_CPU, client cpu: $CLIENT_CPU, subscribers: $N, client processes: $PROCS, rounds: $ROUNDS"
} >"$OUT/machine.txt"

status=0
for round in $(seq 1 "$ROUNDS"); do
	for wl in $WORKLOADS; do
		for srv in $SERVERS; do
			if [[ $wl == ws-* && $srv == pushpin ]]; then
				log "skip $wl on pushpin: WebSocket there needs a WebSocket-over-HTTP origin"
				continue
			fi
			if [[ $wl == ws-* && $srv == floor ]]; then
				continue # the floor speaks SSE only
			fi
			run=$wl-$srv
			if ((ROUNDS > 1)); then run=$run-r$round; fi
			log "=== $wl on $srv (round $round of $ROUNDS)"
			"start_$srv"
			sleep 1
			# shellcheck disable=SC2046 # workload_args is a list of flags
			if ! timeout --kill-after=10 "$RUN_TIMEOUT" taskset -c "$CLIENT_CPU" "$BIN/cometbench" \
				-target "$srv" -workload "$wl" -subscribers "$N" -procs "$PROCS" \
				-pid "$SERVER_PIDS" -server-core "$SERVER_CPU" -client-core "$CLIENT_CPU" -timeout "$((RUN_TIMEOUT - 10))s" \
				$(workload_args "$wl") -json "$OUT/$run.json" \
				>"$OUT/$run.txt" 2>"$OUT/$run.log"; then
				log "$wl on $srv: cometbench exited non-zero (see $OUT/$run.log)"
				status=1
			fi
			cat "$OUT/$run.txt" >&2 || true
			stop_all
			sleep 2 # let TIME_WAIT sockets and the kernel settle
		done
	done
done

"$BIN/cometbench" chart -md "$OUT/table.md" -svg "$OUT/chart.svg" "$OUT"
log "table: $OUT/table.md, chart: $OUT/chart.svg"
cat "$OUT/table.md"
exit $status
