#!/usr/bin/env bash
# Measures what the comet handler costs requests that do not need it, and
# long-poll answers against Caddy's own `respond`: wrk on CPU 1, Caddy
# pinned to CPU 0, loopback only. Prints a markdown table.
#
#   cmd/cometbench/overhead.sh [seconds]
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

echo "| workload | with comet | without comet / respond | ratio |"
echo "|---|---|---|---|"
# Alternate the two configs, three runs each, and keep each one's best:
# what is left between them is the handler, not the machine's mood.
with=0 without=0
for _ in 1 2 3; do
	w=$(run with-comet http://127.0.0.1:19200/body.txt)
	o=$(run without-comet http://127.0.0.1:19200/body.txt)
	with=$(awk "BEGIN{print ($w > $with) ? $w : $with}")
	without=$(awk "BEGIN{print ($o > $without) ? $o : $without}")
done
echo "| pass-through to an upstream (1 KiB) | $with req/s | $without req/s | $(awk "BEGIN{printf \"%.3f\", $with/$without}") |"
lp=0 respond=0
for _ in 1 2 3; do
	l=$(run with-comet "http://127.0.0.1:19200/comet/sub/lp?last_id=earliest&wait=0")
	r=$(run with-comet http://127.0.0.1:19200/static)
	lp=$(awk "BEGIN{print ($l > $lp) ? $l : $lp}")
	respond=$(awk "BEGIN{print ($r > $respond) ? $r : $respond}")
done
echo "| long-poll with a message waiting vs respond | $lp req/s | $respond req/s | $(awk "BEGIN{printf \"%.3f\", $lp/$respond}") |"
