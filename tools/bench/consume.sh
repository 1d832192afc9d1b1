#!/bin/sh
# consume.sh — POST /api/v1/tokens/consume over HTTP (API-key auth, rate-limit
# admission, quota reserve/settle, the reference call to the provider stub)
# next to GET /healthz on the same server, under the same wrk load; then
# checks that the quota pool is exact.
#
# Starts two processes on loopback, each from build/rel/leakyd, as
# providers.sh does:
#   stubs    leakyd --stubs-only: [stubs] listen = 127.0.0.1:0,
#            threads = STUBS_THREADS, latency_ms = 0, [log] access = no
#            (the port comes from its "stubs_port" log line)
#   gateway  leakyd with a throwaway data dir, [http] listen = 127.0.0.1:0,
#            threads = LEAKYD_THREADS, LEAKYD_ADMIN_PASSWORD set (user
#            "admin"), [provider.openai] on the stubs (default_model
#            gpt-4o-mini, bulkhead = 1000, pool_size = 256, timeout_ms =
#            10000), [model.gpt-4o-mini], [features] rate_limiting = yes,
#            quota_enforcement = yes, and [limits] that never bind:
#            token_capacity = token_rate = 10^9 per second, request_limit =
#            10^9 and request_routes = /api/v1/tokens/**=1000000000 per
#            minute.  So every consume is admitted: this measures what the
#            admission path costs, not its refusals.  [log] access = no; it
#            starts at level = info so its "listening on" line (with "port")
#            is logged, then the config is rewritten to level = warn and
#            reloaded with SIGHUP before any measurement.
# Setup: log in as admin (POST /api/v1/auth/login), register user "bench"
# (POST /api/v1/auth/register), create an API key for it (POST
# /api/v1/auth/api-keys with its Bearer token), and grant it an openai pool of
# GRANT tokens (POST /admin/v1/quotas/grant as admin, reason "bench").
# Scenarios, each as wrk -tTHREADS -cCONNS -dDURATION --latency -s TMP/SCEN.lua:
#   consume   POST /api/v1/tokens/consume, X-Api-Key of "bench",
#             {"userId":"<bench>","provider":"openai","tokens":1}
#   healthz   GET /healthz (no auth, whitelisted from the request limits)
# Both Lua scripts count answers that are not 200 in a response() hook (so
# wrk pays the same per-response Lua cost in both rows; healthz.sh runs wrk
# without a script, so its healthz figure is a little higher).
# One warm-up (WARMUP) per scenario, then RUNS rounds; each round runs
# consume then healthz.  Any answer that is not 200, any socket error, any
# failed upstream call or retry (the gateway's /metrics) in any run, warm-ups
# included, stops the script with exit 1: a bench that measured 429s is a lie.
# Per scenario: the round with the median req/s, its p50/p99, leakyd CPU per
# request for the gateway and the stubs processes (utime+stime from
# /proc/PID/stat, before/after, divided by the requests wrk completed), and
# "other load" / "steal" as in providers.sh, and the busiest gateway thread's
# CPU as a share of one CPU over the run (from /proc/PID/task/*/stat; a
# thread near 100% serialises the process).  For consume it also reports,
# from the gateway's /metrics over the measured runs: upstream calls, writer
# writes and commits per consume, and the writer's mean group size
# (leaky_writer_group_size _sum/_count).
# Then the exactness checks:
#   1. once the gateway is idle: GET /api/v1/tokens/quota?userId=&provider=
#      openai must say totalTokens = GRANT, reservedTokens = 0 and
#      remainingTokens = GRANT - (consumes answered 200, from the server's
#      leaky_http_requests_total{route="/api/v1/tokens/consume",status="200"},
#      warm-up included: the pool was granted before the first consume), and
#      no consume may have answered anything but 200;
#   2. after the gateway is stopped (SIGTERM, exit 0):
#      leakyctl -c TMP/gw.conf check must pass (integrity, schema, every pool
#      equal to the sum of its ledger, the bucket store).
#
#   tools/bench/consume.sh
#   DURATION=20s tools/bench/consume.sh
#   CONNS=64 THREADS=2 DURATION=10s RUNS=1 WARMUP=2s LEAKYD_THREADS=128 \
#     STUBS_THREADS=128 LEAKYD=build/rel/leakyd LEAKYCTL=build/rel/leakyctl \
#     tools/bench/consume.sh
#
# Only 127.0.0.1 is used.  Everything started here is stopped, and the temp
# dir removed, on exit (including ^C).  Exits non-zero on any failure.  Needs
# wrk and curl: `tools/deps.sh test`.  Builds nothing of leakyd: run `make`
# first.
set -eu

CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-1}
WARMUP=${WARMUP:-2s}
LEAKYD_THREADS=${LEAKYD_THREADS:-128}
STUBS_THREADS=${STUBS_THREADS:-128}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
LEAKYD=${LEAKYD:-$ROOT/build/rel/leakyd}
LEAKYCTL=${LEAKYCTL:-$ROOT/build/rel/leakyctl}
ADMIN_PASSWORD=bench-admin-password
USER_PASSWORD=bench-password-123
GRANT=1000000000000000 # 10^15, the largest grant the API accepts
SCENS="consume healthz"
CONSUME_ROUTE='route="/api/v1/tokens/consume"'

die() { echo "consume.sh: $*" >&2; exit 1; }
missing() { echo "consume.sh: $1 not found; run: tools/deps.sh test" >&2; exit 69; }

# --- preconditions -----------------------------------------------------------
command -v wrk >/dev/null 2>&1 || missing wrk
command -v curl >/dev/null 2>&1 || missing curl
[ -x "$LEAKYD" ] || die "$LEAKYD is not built; run: make"
[ -x "$LEAKYCTL" ] || die "$LEAKYCTL is not built; run: make"
case $RUNS in '' | *[!0-9]* | 0) die "RUNS must be a positive integer" ;; esac
for v in "$CONNS" "$THREADS" "$LEAKYD_THREADS" "$STUBS_THREADS"; do
	case $v in '' | *[!0-9]* | 0) die "CONNS, THREADS, LEAKYD_THREADS and STUBS_THREADS must be positive integers" ;; esac
done
for d in "$DURATION" "$WARMUP"; do
	case ${d%s} in '' | *[!0-9]*) die "durations must be whole seconds, e.g. 10s" ;; esac
done
if [ "${DURATION%s}" -lt 1 ] || [ "${DURATION%s}" -gt 300 ] ||
	[ "${WARMUP%s}" -lt 1 ] || [ "${WARMUP%s}" -gt 60 ]; then
	die "DURATION must be 1s..300s and WARMUP 1s..60s"
fi
[ "$LEAKYD_THREADS" -ge "$CONNS" ] ||
	echo "consume.sh: warning: LEAKYD_THREADS=$LEAKYD_THREADS < CONNS=$CONNS;" \
		"civetweb leaves the extra connections unserved" >&2
# the stubs serve the gateway's pool: up to CONNS upstream connections
[ "$STUBS_THREADS" -ge "$CONNS" ] ||
	echo "consume.sh: warning: STUBS_THREADS=$STUBS_THREADS < CONNS=$CONNS;" \
		"stub connections may wait unserved" >&2
# wrk refuses more threads than connections
WT=$((THREADS < CONNS ? THREADS : CONNS))

TICK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/leaky-bench-consume.XXXXXX")
PIDS=""

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE # e.g. piped into head: still clean up

task_ticks() { # PID FILE: "tid utime+stime" of every thread of PID into FILE
	for t in /proc/"$1"/task/*/stat; do
		sed 's/^\([0-9]*\) .*) /\1 /' "$t" 2>/dev/null | awk '{ print $1, $13 + $14 }'
	done >"$2"
}

# BEFORE AFTER SECONDS -> "tid share%": the thread that used the most CPU
# between the two task_ticks files, as a share of one CPU over SECONDS (a
# thread near 100% serialises the process: the writer, say)
busiest_thread() {
	awk -v tick="$TICK" -v secs="$3" 'NR == FNR { t0[$1] = $2; next }
		($1 in t0) && $2 - t0[$1] > best { best = $2 - t0[$1]; tid = $1 }
		END { printf "%d %.0f\n", tid, best * 100 / (tick * secs) }' "$1" "$2"
}

json_num() { # NAME < JSON -> the integer value of "NAME"
	sed -n "s/.*\"$1\":\\(-\\{0,1\\}[0-9][0-9]*\\).*/\\1/p"
}

# --- /metrics ------------------------------------------------------------------
scrape() { # FILE: the gateway's /metrics into FILE
	curl -sf -m 5 "$GW/metrics" >"$1" || die "cannot read $GW/metrics"
}

# FILE NAME [LABEL-SUBSTRING...] -> the sum of NAME's samples whose label set
# contains every substring (e.g. 'status="200"'); 0 when there are none.
# Label values here never contain blanks.
msum() {
	f=$1 n=$2
	shift 2
	awk -v n="$n" -v subs="$*" '
		BEGIN { k = split(subs, s, " ") }
		/^#/ { next }
		{
			name = $1
			sub(/\{.*/, "", name)
			if (name != n) next
			for (i = 1; i <= k; i++) if (!index($1, s[i])) next
			t += $NF
		}
		END { printf "%.0f\n", t }' "$f"
}

# FILE -> "consume200 consume_not200 up_ok up_bad up_retry wr_writes wr_commits
# grp_sum grp_count": the counters the runs are judged by
counters() {
	printf '%s %s %s %s %s %s %s %s %s\n' \
		"$(msum "$1" leaky_http_requests_total "$CONSUME_ROUTE" 'status="200"')" \
		"$(awk -v r="$CONSUME_ROUTE" '/^leaky_http_requests_total\{/ && index($1, r) &&
			!index($1, "status=\"200\"") { t += $NF } END { printf "%.0f\n", t }' "$1")" \
		"$(msum "$1" leaky_provider_requests_total 'provider="openai"' 'outcome="ok"')" \
		"$(awk '/^leaky_provider_requests_total\{/ && index($1, "provider=\"openai\"") &&
			!index($1, "outcome=\"ok\"") { t += $NF } END { printf "%.0f\n", t }' "$1")" \
		"$(msum "$1" leaky_provider_retries_total)" \
		"$(msum "$1" leaky_writer_writes_total)" \
		"$(msum "$1" leaky_writer_commits_total)" \
		"$(msum "$1" leaky_writer_group_size_sum)" \
		"$(msum "$1" leaky_writer_group_size_count)"
}

wait_idle() { # until the gateway handles nothing but the scrape and the
	# consume counter stopped moving (requests wrk left in flight have ended)
	n=0 last=-1
	while :; do
		scrape "$TMP/idle.prom"
		c=$(msum "$TMP/idle.prom" leaky_http_requests_total "$CONSUME_ROUTE")
		i=$(msum "$TMP/idle.prom" leaky_http_inflight_requests)
		[ "$i" -gt 1 ] || [ "$c" != "$last" ] || return 0
		last=$c
		n=$((n + 1))
		[ $n -le 100 ] || die "the gateway did not go idle after a run"
		sleep 0.2
	done
}

# --- the stubs -----------------------------------------------------------------
cat >"$TMP/stubs.conf" <<EOF
[stubs]
enabled = yes
listen = 127.0.0.1:0
threads = $STUBS_THREADS
latency_ms = 0

[log]
level = info
access = no
EOF
"$LEAKYD" --stubs-only -c "$TMP/stubs.conf" 2>>"$TMP/stubs.log" &
STUBS_PID=$!
PIDS="$PIDS $STUBS_PID"
if ! SP=$(wait_log_port "$TMP/stubs.log" stubs_port "$STUBS_PID" 30); then
	cat "$TMP/stubs.log" >&2 2>/dev/null || true
	die "the stubs never logged their port"
fi
STUBS=http://127.0.0.1:$SP

# --- the gateway ---------------------------------------------------------------
gw_conf() { # LEVEL
	cat >"$TMP/gw.conf" <<EOF
[http]
listen = 127.0.0.1:0
threads = $LEAKYD_THREADS

[storage]
data_dir = $TMP/gw.data

[limits]
; never binding: the bench measures admission's cost, not its refusals
token_capacity = 1000000000
token_rate = 1000000000
token_period_ms = 1000
request_limit = 1000000000
request_routes = /api/v1/tokens/**=1000000000

[features]
rate_limiting = yes
quota_enforcement = yes

[log]
level = $1
access = no

[provider.openai]
base_url = $STUBS/openai/v1
format = openai
credential = none
default_model = gpt-4o-mini
bulkhead = 1000
pool_size = 256
timeout_ms = 10000

[model.gpt-4o-mini]
provider = openai
price_input = 150000
price_cached_input = 75000
price_output = 600000
EOF
}
gw_conf info # so that the "listening on ... port" line is logged
LEAKYD_ADMIN_PASSWORD=$ADMIN_PASSWORD "$LEAKYD" -c "$TMP/gw.conf" 2>>"$TMP/gw.log" &
GW_PID=$!
PIDS="$PIDS $GW_PID"
if ! GP=$(wait_log_port "$TMP/gw.log" port "$GW_PID" 30); then
	cat "$TMP/gw.log" >&2 2>/dev/null || true
	die "the gateway never logged its port"
fi
GW=http://127.0.0.1:$GP
if ! wait_status "$GW/readyz" 200 30; then
	cat "$TMP/gw.log" >&2 2>/dev/null || true
	die "the gateway never answered /readyz with 200"
fi
gw_conf warn
kill -HUP "$GW_PID"
wait_log_line "$TMP/gw.log" "[log] level changed from 'info' to 'warn'" 10 ||
	{ cat "$TMP/gw.log" >&2; die "the gateway did not reload [log] level = warn"; }

# --- identity and quota ------------------------------------------------------------
post() { # URL BODY [HEADER] -> body on stdout; fails unless 2xx
	if [ $# -ge 3 ]; then
		curl -sf -m 10 -H 'Content-Type: application/json' -H "$3" -d "$2" "$1"
	else
		curl -sf -m 10 -H 'Content-Type: application/json' -d "$2" "$1"
	fi
}
r=$(post "$GW/api/v1/auth/login" "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}") ||
	die "login as admin failed"
ADMIN_TOKEN=$(echo "$r" | json_str token)
[ -n "$ADMIN_TOKEN" ] || die "no token in the admin login answer: $r"
r=$(post "$GW/api/v1/auth/register" \
	"{\"username\":\"bench\",\"email\":\"bench@example.com\",\"password\":\"$USER_PASSWORD\"}") ||
	die "registering user bench failed"
USER_TOKEN=$(echo "$r" | json_str token)
USER_ID=$(echo "$r" | json_str userId)
{ [ -n "$USER_TOKEN" ] && [ -n "$USER_ID" ]; } || die "no token or userId in: $r"
r=$(post "$GW/api/v1/auth/api-keys" "{\"userId\":\"$USER_ID\",\"name\":\"bench-consume\"}" \
	"Authorization: Bearer $USER_TOKEN") || die "creating an API key failed"
KEY=$(echo "$r" | json_str apiKey)
case $KEY in lt_*) ;; *) die "no API key in: $r" ;; esac
r=$(post "$GW/admin/v1/quotas/grant" \
	"{\"userId\":\"$USER_ID\",\"provider\":\"openai\",\"tokens\":$GRANT,\"reason\":\"bench\"}" \
	"Authorization: Bearer $ADMIN_TOKEN") || die "granting the openai pool failed"
[ "$(echo "$r" | json_num remainingTokens)" = "$GRANT" ] || die "the grant answered: $r"

# --- scenarios -------------------------------------------------------------------
CONSUME_BODY="{\"userId\":\"$USER_ID\",\"provider\":\"openai\",\"tokens\":1}"
count_lua() { # the response() hook and done() line shared by both scripts
	cat <<'EOF'
-- count answers that are not 200; done() prints the total
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
	if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
	local n = 0
	for _, t in ipairs(threads) do n = n + t:get("bad") end
	io.write(string.format("non-200: %d\n", n))
end
EOF
}
{
	echo 'wrk.method = "POST"'
	echo 'wrk.headers["Content-Type"] = "application/json"'
	echo "wrk.headers[\"X-Api-Key\"] = \"$KEY\""
	echo "wrk.body = '$CONSUME_BODY'"
	count_lua
} >"$TMP/consume.lua"
{
	echo 'wrk.method = "GET"'
	count_lua
} >"$TMP/healthz.lua"
echo "$GW/api/v1/tokens/consume" >"$TMP/consume.url"
echo "$GW/healthz" >"$TMP/healthz.url"

# One consume with curl: 200, allowed, with the provider's answer.
out=$(curl -s -m 10 -w '\n%{http_code}' -H 'Content-Type: application/json' \
	-H "X-Api-Key: $KEY" -d "$CONSUME_BODY" "$GW/api/v1/tokens/consume") || true
code=$(echo "$out" | tail -n 1)
if [ "$code" != 200 ] || ! echo "$out" | grep -qF '"allowed":true' ||
	! echo "$out" | grep -qF '"providerResponse":{'; then
	die "one consume answered $code, not 200 with allowed and providerResponse: $out"
fi
[ "$(http_status "$GW/healthz")" = 200 ] || die "/healthz is not 200"

# One wrk run.  Appends to $TMP/SCEN.runs:
# "reqs rps p50 p99 err non2xx non200 gw_us stubs_us other% steal% tid busiest%"
# and, for consume, to $TMP/consume.ctr the counter deltas of the run:
# "consume200 up_ok writes commits grp_sum grp_count"
measure() { # SCEN DURATION
	scen=$1 dur=$2
	scrape "$TMP/before.prom"
	c0=$(counters "$TMP/before.prom")
	task_ticks "$GW_PID" "$TMP/tasks0"
	g0=$(cpu_ticks "$GW_PID")
	s0=$(cpu_ticks "$STUBS_PID")
	b=$(box_busy)
	b0=${b% *} st0=${b#* }
	kid_ticks
	k0=$KIDS
	wrk -t"$WT" -c"$CONNS" -d"$dur" --latency -s "$TMP/$scen.lua" "$(cat "$TMP/$scen.url")" \
		>"$TMP/$scen.out" 2>&1 || true
	kid_ticks
	k1=$KIDS
	b=$(box_busy)
	b1=${b% *} st1=${b#* }
	g1=$(cpu_ticks "$GW_PID")
	s1=$(cpu_ticks "$STUBS_PID")
	task_ticks "$GW_PID" "$TMP/tasks1"
	wait_idle
	scrape "$TMP/after.prom"
	c1=$(counters "$TMP/after.prom")
	# shellcheck disable=SC2086 # nine numbers each, split on purpose
	d=$(echo $c0 $c1 | awk '{ for (i = 1; i <= 9; i++) printf "%.0f ", $(i + 9) - $i; print "" }')
	# shellcheck disable=SC2086
	set -- $d
	dok=$1 dnot=$2 uok=$3 ubad=$4 uret=$5 dwr=$6 dcom=$7 dgs=$8 dgc=$9
	line=$(parse_wrk <"$TMP/$scen.out")
	# shellcheck disable=SC2086 # split on purpose
	set -- $line
	if [ "$1" = 0 ] || [ "$5" != 0 ] || [ "$6" != 0 ] || [ "$7" != 0 ] ||
		[ "$dnot" != 0 ] || [ "$ubad" != 0 ] || [ "$uret" != 0 ]; then
		echo "consume.sh: $scen: $1 requests, $5 socket errors, $6 non-2xx/3xx, $7 not 200" \
			"(-1: no count); server: $dnot consumes not 200, upstream $ubad failed calls" \
			"and $uret retries; wrk said:" >&2
		sed 's/^/    /' "$TMP/$scen.out" >&2
		echo "  consume statuses on the server:" >&2
		grep "^leaky_http_requests_total{.*$CONSUME_ROUTE" "$TMP/after.prom" | sed 's/^/    /' >&2
		echo "  gateway log (tail):" >&2
		tail -n 5 "$TMP/gw.log" | sed 's/^/    /' >&2
		die "$scen: not every answer was a 200"
	fi
	extra=$(awk -v n="$1" -v g=$((g1 - g0)) -v s=$((s1 - s0)) -v tick="$TICK" \
		-v o=$((b1 - b0 - (g1 - g0) - (s1 - s0) - (k1 - k0))) -v st=$((st1 - st0)) \
		-v ncpu="$(nproc)" -v secs="${dur%s}" \
		'BEGIN {
			other = o * 100 / (tick * ncpu * secs)
			printf "%.1f %.1f %.0f %.0f", g * 1e6 / tick / n, s * 1e6 / tick / n,
				other < 0 ? 0 : other, st * 100 / (tick * ncpu * secs) }')
	LAST="$line $extra $(busiest_thread "$TMP/tasks0" "$TMP/tasks1" "${dur%s}")"
	echo "$LAST" >>"$TMP/$scen.runs"
	[ "$scen" != consume ] || echo "$dok $uok $dwr $dcom $dgs $dgc" >>"$TMP/consume.ctr"
}

echo "# consume.sh: POST /api/v1/tokens/consume (API key, admission, quota, reference call) vs GET /healthz, same server"
echo "# wrk -t$WT -c$CONNS -d$DURATION --latency -s SCENARIO.lua URL; warm-up $WARMUP each;" \
	"$RUNS round(s), median reported"
echo "# $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
	"$(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ), load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo "# stubs:   $LEAKYD --stubs-only, pid $STUBS_PID, $STUBS, threads=$STUBS_THREADS, latency 0"
echo "# gateway: $LEAKYD, pid $GW_PID, $GW, threads=$LEAKYD_THREADS, [log] level=warn access=no;" \
	"openai on the stubs (default_model gpt-4o-mini, bulkhead 1000, pool_size 256)"
echo "# limits never bind (token_capacity = token_rate = 10^9/s, /api/v1/tokens/**=10^9/min):" \
	"admission is measured, not refusals; quota_enforcement = yes; user 'bench' has $GRANT openai tokens"

for s in $SCENS; do # warm-up, checked but not recorded
	measure "$s" "$WARMUP"
	rm -f "$TMP/$s.runs" "$TMP/consume.ctr"
done
r=1
while [ $r -le "$RUNS" ]; do
	for s in $SCENS; do
		measure "$s" "$DURATION"
		echo "$LAST" | awk -v n="$s" -v r="$r" '{
			printf "  round %d %-8s %7d req/s  p50 %7.3f ms  p99 %7.3f ms  non-200 %d  CPU us/req: gateway %6.1f stubs %5.1f  other load %2d%% (steal %d%%)  busiest gateway thread %d%% (tid %d)\n",
				r, n, $2, $3, $4, $7, $8, $9, $10, $11, $13, $12 }'
	done
	r=$((r + 1))
done

median() { sort -n -k2,2 "$TMP/$1.runs" | awk -v m=$(((RUNS + 1) / 2)) 'NR == m'; }
echo
echo "median of $RUNS    req/s    p50 ms    p99 ms  non-200  gateway CPU us/req  stubs CPU us/req  vs healthz  busiest thread  other load (steal)"
hz=$(median healthz | awk '{ print $2 }')
for s in $SCENS; do
	median "$s" | awk -v n="$s" -v hz="$hz" '{
		printf "%-9s %9d %9.3f %9.3f %8d %19.1f %17.1f %11.3f %14d%% %10d%% (%d%%)\n",
			n, $2, $3, $4, $7, $8, $9, hz ? $2 / hz : 0, $13, $10, $11 }'
done

# Per consume, over the measured runs (the server's counters).
awk '{ ok += $1; up += $2; wr += $3; com += $4; gs += $5; gc += $6 }
	END {
		if (ok == 0) exit 1
		printf "\nper consume (measured runs, %d consumes answered 200): upstream calls %.3f, writer writes %.3f, commits %.3f\n",
			ok, up / ok, wr / ok, com / ok
		printf "writer group commit: mean group size %.2f writes/commit (leaky_writer_group_size %d/%d)\n",
			gc ? gs / gc : 0, gs, gc
	}' "$TMP/consume.ctr" || die "no consume was counted by the server"

# --- exactness ---------------------------------------------------------------------
wait_idle
scrape "$TMP/final.prom"
ok=$(msum "$TMP/final.prom" leaky_http_requests_total "$CONSUME_ROUTE" 'status="200"')
all=$(msum "$TMP/final.prom" leaky_http_requests_total "$CONSUME_ROUTE")
q=$(curl -sf -m 10 -H "X-Api-Key: $KEY" \
	"$GW/api/v1/tokens/quota?userId=$USER_ID&provider=openai") || die "reading the quota failed"
total=$(echo "$q" | json_num totalTokens)
rem=$(echo "$q" | json_num remainingTokens)
resv=$(echo "$q" | json_num reservedTokens)
want=$(awk -v g="$GRANT" -v n="$ok" 'BEGIN { printf "%.0f\n", g - n }')
echo
echo "exactness: $ok consumes answered 200 since the grant ($all in all), warm-ups and the" \
	"curl check included (leaky_http_requests_total{$CONSUME_ROUTE,status=\"200\"})"
echo "  quota: totalTokens $total, reservedTokens $resv, remainingTokens $rem;" \
	"expected remaining $GRANT - $ok = $want"
if [ "$total" != "$GRANT" ] || [ "$resv" != 0 ] || [ "$rem" != "$want" ] || [ "$all" != "$ok" ]; then
	echo "  quota answer: $q" >&2
	die "the pool is not exact"
fi
echo "  pool exact: ok"

# --- events: one token-usage event per consume, and the outbox-to-log delay ----
n=0
while :; do # the relay publishes after the last commit; wait for it
	scrape "$TMP/events.prom"
	pend=$(msum "$TMP/events.prom" leaky_outbox_pending)
	[ "$pend" = 0 ] && break
	n=$((n + 1))
	[ $n -le 100 ] || die "the outbox did not drain ($pend rows pending)"
	sleep 0.1
done
ev=$(msum "$TMP/events.prom" leaky_events_end_offset 'topic="token-usage"')
echo
echo "events: $ev token-usage events in the log for $all consumes (outbox pending 0)"
[ "$ev" = "$all" ] || die "expected exactly one token-usage event per consume"
awk '/^leaky_relay_event_lag_seconds_bucket\{/ {
		le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
		n++; b[n] = le; c[n] = $NF
	}
	/^leaky_relay_event_lag_seconds_sum / { sum = $NF }
	/^leaky_relay_event_lag_seconds_count / { cnt = $NF }
	END {
		if (!cnt) { print "  relay: no events observed"; exit }
		p50 = p99 = "+Inf"
		for (i = 1; i <= n; i++) {
			if (p50 == "+Inf" && c[i] >= 0.50 * cnt) p50 = b[i]
			if (p99 == "+Inf" && c[i] >= 0.99 * cnt) p99 = b[i]
		}
		printf "  outbox-to-log delay (commit to synced append, all %d events, ms resolution): mean %.2f ms, p50 <= %s s, p99 <= %s s (histogram bounds)\n",
			cnt, 1000 * sum / cnt, p50, p99
	}' "$TMP/events.prom"

# Stop the gateway and check the store offline.
kill -TERM "$GW_PID"
PIDS=$STUBS_PID
rc=0
wait "$GW_PID" || rc=$?
[ "$rc" = 0 ] || { tail -n 5 "$TMP/gw.log" >&2; die "the gateway exited $rc on SIGTERM"; }
echo "leakyctl -c TMP/gw.conf check (gateway stopped):"
rc=0
"$LEAKYCTL" -c "$TMP/gw.conf" check >"$TMP/check.out" 2>&1 || rc=$?
sed 's/^/  /' "$TMP/check.out"
[ "$rc" = 0 ] || die "leakyctl check failed (exit $rc)"
echo "  leakyctl check: ok"
