#!/usr/bin/env bash
# Measures what the comet handler costs requests that do not need it, and
# long-poll answers against Caddy's own `respond`: wrk on CPU 1, Caddy
# pinned to CPU 0, loopback only. Prints a markdown table.
#
#   cmd/cometbench/overhead.sh [seconds]     # ROUNDS=5 pairs of runs each
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
go build -o "$work/caddy" ./cmd/caddy

# The upstream: a Caddy of its own on CPU 1 answering 1 KiB.
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/body.txt"
cat > "$work/upstream.Caddyfile" <<CF
{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:19100 {
	root * $work
	file_server
}
CF
taskset -c 1 "$work/caddy" run --config "$work/upstream.Caddyfile" --adapter caddyfile >/dev/null 2>&1 &

front() { # $1: name, $2: site body
	cat > "$work/$1.Caddyfile" <<CF
{
	admin off
	auto_https off
	persist_config off
	grace_period 1s
}
http://127.0.0.1:19200 {
$2
}
CF
}
front with-comet '	comet
	respond /static "ok"
	reverse_proxy 127.0.0.1:19100'
front without-comet '	respond /static "ok"
	reverse_proxy 127.0.0.1:19100'

run() { # $1: config, $2: url; prints requests/s
	taskset -c 0 "$work/caddy" run --config "$work/$1.Caddyfile" --adapter caddyfile >/dev/null 2>&1 &
	local pid=$!
	until curl -s -o /dev/null "http://127.0.0.1:19200/static"; do sleep 0.1; done
	if [[ $2 == *comet/sub* ]]; then
		curl -s -o /dev/null -H 'Content-Type: text/plain' -d waiting http://127.0.0.1:19200/comet/pub/lp
	fi
	taskset -c 1 wrk -t1 -c32 -d"${secs}s" --latency "$2" 2>/dev/null | awk '/Requests\/sec/ {print $2}'
	kill $pid; wait $pid 2>/dev/null || true
}

# pair A B ROUNDS: runs A and B back to back ROUNDS times, alternating
# which goes first, and prints "median-A median-B median-ratio". This VM's
# speed drifts by 10-20 % over minutes; a ratio taken within one pair of
# adjacent runs sees little of that drift, and the median drops outliers.
pair() {
	local a=$1 b=$2 rounds=$3 ra rb ratios=() as=() bs=()
	for i in $(seq "$rounds"); do
		if ((i % 2)); then ra=$(eval "$a"); rb=$(eval "$b"); else rb=$(eval "$b"); ra=$(eval "$a"); fi
		as+=("$ra") bs+=("$rb") ratios+=("$(awk "BEGIN{print $ra/$rb}")")
		echo "overhead: pair $i: $ra vs $rb" >&2
	done
	printf '%s %s %s\n' "$(median "${as[@]}")" "$(median "${bs[@]}")" "$(median "${ratios[@]}")"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

rounds=${ROUNDS:-5}
echo "| workload | with comet | without comet / respond | ratio (median of $rounds adjacent pairs) |"
echo "|---|---|---|---|"
read -r with without ratio < <(pair "run with-comet http://127.0.0.1:19200/body.txt" "run without-comet http://127.0.0.1:19200/body.txt" "$rounds")
echo "| pass-through to an upstream (1 KiB) | $with req/s | $without req/s | $(printf %.3f "$ratio") |"
read -r lp respond ratio < <(pair "run with-comet 'http://127.0.0.1:19200/comet/sub/lp?last_id=earliest&wait=0'" "run with-comet http://127.0.0.1:19200/static" "$rounds")
echo "| long-poll with a message waiting vs respond | $lp req/s | $respond req/s | $(printf %.3f "$ratio") |"
