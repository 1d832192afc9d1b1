#!/bin/sh
# healthz.sh — GET /healthz throughput of leakyd next to nginx serving a static 200.
#
# Starts build/rel/leakyd on loopback with a throwaway data dir and config,
# and a private nginx instance answering `return 200 '{"status":"ok"}'`, then
# drives GET /healthz on each with the same wrk command, one server at a time.
# Prints req/s, p50/p99 latency, server CPU time per request (utime+stime of
# the server's processes from /proc/PID/stat, before/after, divided by the
# requests wrk completed), the ratio to nginx, and "other load": CPU used by
# anything but the server and wrk during the run, as a share of the machine
# (another job on the box; a run with more than a few % was disturbed).
# Scenarios:
#   leakyd        [log] access = no   (the headline figure)
#   leakyd+log    [log] access = yes  (one JSON line per request, to a file)
#   nginx         NGINX_WORKERS workers (default 2 = cores), access_log off
#   floor         FLOOR=1 only: bare civetweb, one mg_write per request
#                 (tools/bench/civetweb_floor.c, compiled into the temp dir)
#   base          LEAKYD_BASE=/path only: a second leakyd binary, access = no
#                 (A/B a change: copy the old build/rel/leakyd aside first)
# All servers are started first and stay up; each round runs every scenario
# once, in turn, so slow drift in background load hits all of them alike.
# One short warm-up per server, RUNS rounds, the median run (by req/s) is
# reported.  Builds nothing of leakyd: run `make` first.
#
#   tools/bench/healthz.sh
#   CONNS=64 THREADS=2 DURATION=10s RUNS=3 LEAKYD_THREADS=128 tools/bench/healthz.sh
#   FLOOR=1 LEAKYD_BASE=/tmp/leakyd.old tools/bench/healthz.sh
#
# Only 127.0.0.1 is used.  Everything started here is stopped, and the temp
# dir removed, on exit (including ^C).  Needs wrk, nginx (nginx-light) and
# curl or python3: `tools/deps.sh test` installs them.
set -eu

CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2s}
LEAKYD_THREADS=${LEAKYD_THREADS:-128}
NGINX_WORKERS=${NGINX_WORKERS:-2}
FLOOR=${FLOOR:-0}
LEAKYD_BASE=${LEAKYD_BASE:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
LEAKYD=${LEAKYD:-$ROOT/build/rel/leakyd}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

die() { echo "healthz.sh: $*" >&2; exit 1; }
missing() { echo "healthz.sh: $1 not found; run: tools/deps.sh test" >&2; exit 69; }

# --- preconditions -----------------------------------------------------------
command -v wrk >/dev/null 2>&1 || missing wrk
[ -x "$NGINX" ] || missing "nginx (package nginx-light)"
if command -v curl >/dev/null 2>&1; then HTTPGET=curl
elif [ -x /usr/bin/python3 ]; then HTTPGET=python
else missing "curl or /usr/bin/python3"; fi
[ -x "$LEAKYD" ] || die "$LEAKYD is not built; run: make"
[ -z "$LEAKYD_BASE" ] || [ -x "$LEAKYD_BASE" ] || die "LEAKYD_BASE=$LEAKYD_BASE is not executable"
case $RUNS in '' | *[!0-9]* | 0) die "RUNS must be a positive integer" ;; esac
case ${DURATION%s} in '' | *[!0-9]*) die "DURATION must be whole seconds, e.g. 10s" ;; esac
case ${WARMUP%s} in '' | *[!0-9]*) die "WARMUP must be whole seconds, e.g. 2s" ;; esac
if [ "${DURATION%s}" -lt 1 ] || [ "${DURATION%s}" -gt 300 ] || [ "${WARMUP%s}" -gt 60 ]; then
	die "DURATION must be 1s..300s and WARMUP at most 60s"
fi
[ "$LEAKYD_THREADS" -ge "$CONNS" ] 2>/dev/null ||
	echo "healthz.sh: warning: LEAKYD_THREADS=$LEAKYD_THREADS < CONNS=$CONNS;" \
		"civetweb leaves the extra connections unserved" >&2
if [ "$FLOOR" = 1 ]; then
	CC=${CC:-cc}
	command -v "$CC" >/dev/null 2>&1 || missing "$CC (package gcc)"
fi

TICK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/leaky-bench.XXXXXX")
PIDS=""

cleanup() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $PIDS; do
		i=0 # bounded wait: leakyd drains, nginx and the floor exit on TERM
		while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE # e.g. piped into head: still clean up

free_port() { # a loopback TCP port nobody listens on (tiny race; fine for a bench)
	if [ -x /usr/bin/python3 ]; then
		/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
	else
		p=$((20000 + $$ % 20000))
		while ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
		echo $p
	fi
}

http_status() { # URL -> HTTP status, or 000
	if [ $HTTPGET = curl ]; then
		curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || echo 000
	else
		/usr/bin/python3 - "$1" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
EOF
	fi
}

cpu_ticks() { # sum of utime+stime (clock ticks) over the given pids
	t=0
	for p in "$@"; do
		# after the ")" that ends comm: state is $1, utime $12, stime $13
		s=$(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')
		t=$((t + s))
	done
	echo $t
}

box_busy() { # busy ticks of the whole machine: user nice system irq softirq steal
	# (a task's utime+stime includes the softirq work done in its context,
	# which /proc/stat counts as softirq: leave irq/softirq out and the
	# difference below goes negative)
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

kid_ticks() { # -> $KIDS: CPU ticks of this shell's waited-for children (wrk, mostly).
	# `times` must run in this shell, not in a $(...) or pipeline subshell,
	# whose own children counters start at zero.
	times >"$TMP/times"
	KIDS=$(awk -v tick="$TICK" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
		printf "%d\n", t * tick + 0.5 }' "$TMP/times")
}

# wrk --latency output -> "requests req/s p50_ms p99_ms socket_errors non2xx"
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
		return v + 0
	}
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/requests in/ { reqs = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { bad = $5 }
	END { printf "%d %.0f %.3f %.3f %d %d\n", reqs, rps, p50, p99, err + 0, bad + 0 }'
}

# Scenarios: NAMES in start order; for each, $TMP/NAME.{url,pids,label}.
NAMES=""
add_scenario() { # NAME URL LABEL PID...
	n=$1 u=$2 l=$3
	shift 3
	echo "$u" >"$TMP/$n.url"
	echo "$*" >"$TMP/$n.pids"
	echo "$l" >"$TMP/$n.label"
	NAMES="$NAMES $n"
}

start_leakyd() { # NAME BINARY ACCESS(yes|no)
	name=$1 bin=$2 access=$3
	port=$(free_port)
	cat >"$TMP/$name.conf" <<EOF
[http]
listen = 127.0.0.1:$port
threads = $LEAKYD_THREADS
max_inflight = $((LEAKYD_THREADS * 4))

[storage]
data_dir = $TMP/$name.data

[log]
level = info
access = $access
file = $TMP/$name.log
EOF
	"$bin" -c "$TMP/$name.conf" 2>>"$TMP/$name.stderr" &
	pid=$!
	PIDS="$PIDS $pid"
	if ! wait_status "http://127.0.0.1:$port/readyz" 200 30; then
		cat "$TMP/$name.stderr" "$TMP/$name.log" >&2 2>/dev/null || true
		die "leakyd ($name) never answered /readyz with 200"
	fi
	[ "$(http_status "http://127.0.0.1:$port/healthz")" = 200 ] || die "$name: /healthz is not 200"
	add_scenario "$name" "http://127.0.0.1:$port/healthz" \
		"$name: $bin, pid $pid, 127.0.0.1:$port, threads=$LEAKYD_THREADS, access log $access" "$pid"
}

start_nginx() {
	port=$(free_port)
	d=$TMP/nginx
	mkdir -p "$d/logs"
	cat >"$d/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $d/body;
	proxy_temp_path $d/proxy;
	fastcgi_temp_path $d/fastcgi;
	uwsgi_temp_path $d/uwsgi;
	scgi_temp_path $d/scgi;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$port;
		default_type application/json;
		location = /healthz { return 200 '{"status":"ok"}'; }
	}
}
EOF
	"$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" -g 'daemon off;' 2>>"$d/stderr" &
	pid=$!
	PIDS="$PIDS $pid"
	if ! wait_status "http://127.0.0.1:$port/healthz" 200 10; then
		cat "$d/stderr" "$d/logs/error.log" >&2 2>/dev/null || true
		die "nginx never answered /healthz with 200"
	fi
	workers=$(ps -o pid= --ppid "$pid" | tr -s ' \n' ' ' | sed 's/ *$//')
	add_scenario nginx "http://127.0.0.1:$port/healthz" \
		"nginx: $("$NGINX" -v 2>&1 | sed 's/^.*: //'), master $pid, workers$workers, 127.0.0.1:$port, access_log off" \
		"$pid $workers"
}

start_floor() {
	"$CC" -O2 -o "$TMP/floor" "$ROOT/tools/bench/civetweb_floor.c" -lcivetweb -lpthread ||
		die "cannot build tools/bench/civetweb_floor.c (needs libcivetweb-dev)"
	port=$(free_port)
	"$TMP/floor" "127.0.0.1:$port" "$LEAKYD_THREADS" 2>>"$TMP/floor.stderr" &
	pid=$!
	PIDS="$PIDS $pid"
	wait_status "http://127.0.0.1:$port/healthz" 200 10 || die "civetweb floor never answered"
	add_scenario floor "http://127.0.0.1:$port/healthz" \
		"floor: bare civetweb, one mg_write, pid $pid, 127.0.0.1:$port, threads=$LEAKYD_THREADS" "$pid"
}

run_one() { # NAME ROUND
	name=$1 r=$2
	url=$(cat "$TMP/$name.url")
	# shellcheck disable=SC2046
	c0=$(cpu_ticks $(cat "$TMP/$name.pids"))
	kid_ticks
	b0=$(box_busy) k0=$KIDS
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url" >"$TMP/$name.$r.out"
	# shellcheck disable=SC2046
	c1=$(cpu_ticks $(cat "$TMP/$name.pids"))
	kid_ticks
	b1=$(box_busy) k1=$KIDS
	line=$(parse_wrk <"$TMP/$name.$r.out")
	us=$(echo "$line" | awk -v d=$((c1 - c0)) -v tick="$TICK" \
		'{ printf "%.1f", $1 ? d * 1e6 / tick / $1 : 0 }')
	# CPU used by anything but this server and wrk, as % of the machine:
	# other sessions' work competing with the measurement.
	other=$(awk -v o=$((b1 - b0 - (c1 - c0) - (k1 - k0))) -v tick="$TICK" -v n="$(nproc)" \
		-v s="${DURATION%s}" 'BEGIN { v = o * 100 / (tick * n * s); printf "%.0f", v < 0 ? 0 : v }')
	echo "$line $us $other" >>"$TMP/$name.runs"
	echo "$line $us $other" | awk -v n="$name" -v r="$r" '{
		printf "  round %d %-10s %8d req/s  p50 %6.3f ms  p99 %6.3f ms  %5.1f us CPU/req  other load %2d%%  errors %d  non-2xx %d\n",
			r, n, $2, $3, $4, $7, $8, $5, $6 }'
	if [ "$(echo "$line" | awk '{ print $5 + $6 }')" != 0 ]; then
		echo "  ($name round $r had socket errors or non-2xx answers; wrk said:)"
		sed 's/^/    /' "$TMP/$name.$r.out"
	fi
	# keep the access log from filling the disk; leakyd appends (O_APPEND)
	[ ! -f "$TMP/$name.log" ] || : >"$TMP/$name.log"
}

median() { # NAME -> the run with the median req/s (lower middle when RUNS is even)
	sort -n -k2,2 "$TMP/$1.runs" | awk -v m=$(((RUNS + 1) / 2)) 'NR == m'
}

echo "# GET /healthz: wrk -t$THREADS -c$CONNS -d$DURATION --latency URL; $RUNS rounds, median reported"
echo "# $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
	"$(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
start_leakyd leakyd "$LEAKYD" no
start_leakyd leakyd+log "$LEAKYD" yes
start_nginx
[ "$FLOOR" != 1 ] || start_floor
[ -z "$LEAKYD_BASE" ] || start_leakyd base "$LEAKYD_BASE" no
for n in $NAMES; do
	echo "# $(cat "$TMP/$n.label")"
	wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$(cat "$TMP/$n.url")" >/dev/null
done
r=1
while [ $r -le "$RUNS" ]; do
	for n in $NAMES; do run_one "$n" "$r"; done
	r=$((r + 1))
done

echo
echo "median of $RUNS      req/s    p50 ms    p99 ms  CPU us/req  vs nginx  other load"
ngx=$(median nginx | awk '{ print $2 }')
for n in $NAMES; do
	median "$n" | awk -v n="$n" -v ngx="$ngx" '{
		printf "%-11s %9d %9.3f %9.3f %11.1f %9.3f %10d%%\n", n, $2, $3, $4, $7, ngx ? $2 / ngx : 0, $8 }'
done
