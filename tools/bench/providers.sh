#!/bin/sh
# providers.sh — what the gateway adds to a non-streamed chat completion:
# the same request through leakyd's /v1/chat/completions and directly
# against the built-in provider stubs, under the same wrk load.
#
# Starts two processes on loopback, each from build/rel/leakyd:
#   stubs    leakyd --stubs-only: the provider stubs alone, [stubs] listen =
#            127.0.0.1:0, threads = STUBS_THREADS, latency_ms = 0, access = no
#            (the port comes from its "stubs_port" log line)
#   gateway  leakyd with a throwaway data dir, [http] listen = 127.0.0.1:0,
#            threads = LEAKYD_THREADS, [log] access = no, level = warn,
#            LEAKYD_ADMIN_PASSWORD set (user "admin"), and two providers on the
#            stubs: [provider.openai] (format openai) and [provider.gemini]
#            (format gemini), both bulkhead = 1000, pool_size = 256,
#            timeout_ms = 10000, with [model.gpt-4o-mini] and
#            [model.gemini-2.0-flash].  It starts at level = info so its
#            "listening on" line (with "port") is logged, then the config is
#            rewritten to level = warn and reloaded with SIGHUP before any
#            measurement.
# logs in as admin, creates one API key (POST /api/v1/auth/api-keys), grants
# the admin 10^15 tokens on openai and gemini (/v1 is billed), and
# runs, with the same fixed body each time (max_tokens 16):
#   direct-openai   POST STUBS/openai/v1/chat/completions, no auth
#   gateway-openai  POST GATEWAY/v1/chat/completions, X-Api-Key, gpt-4o-mini
#                   (API-key cache hit, OpenAI passthrough, one upstream call)
#   direct-gemini   POST STUBS/gemini/v1beta/models/gemini-2.0-flash:generateContent
#                   with the native Gemini body (contents, generationConfig)
#   gateway-gemini  as gateway-openai with model gemini-2.0-flash: translated
#                   to generateContent and the answer back to OpenAI's shape
# as wrk -tTHREADS -cCONNS -dDURATION --latency -s TMP/SCENARIO.lua URL.  The
# Lua script POSTs the body and counts answers that are not 200 in a
# response() hook.  Any answer that is not 200, any socket error, and (for
# gateway rows) any upstream retry or failed upstream call (the gateway's
# /metrics, read between runs) stops the script with exit 1.
# One warm-up per scenario, then RUNS rounds; each round runs every scenario
# once, in turn, so drifting background load hits all of them alike.
# Per scenario: the round with the median req/s, its p50/p99, and leakyd
# CPU per request for the gateway process and for the stubs process
# separately (utime+stime from /proc/PID/stat, before/after the run, divided
# by the requests wrk completed), and "other load" (CPU used by anything but
# these two processes and wrk, as a share of the machine; more than a few %
# means the run was disturbed), as in healthz.sh.  "steal" next to it is the
# share of the machine the hypervisor reported as stolen for other VMs during
# the run (/proc/stat); it is busy time too, so it usually shows up inside
# "other load", but tick sampling keeps the two from adding up exactly.
# Gateway rows also show upstream calls per request (the gateway's
# leaky_provider_requests_total delta / wrk's requests; slightly above 1
# because wrk does not count the requests in flight when it stops).
# Then, per provider, "added": gateway minus direct p50, p99 and total
# leakyd CPU per request (both processes), taken within each round and
# reported as the median over the rounds.
#
#   tools/bench/providers.sh
#   CONNS=1 tools/bench/providers.sh     # unloaded latency (one request at a time)
#   CONNS=32 THREADS=2 DURATION=10s RUNS=3 WARMUP=2s LEAKYD_THREADS=256 \
#     STUBS_THREADS=256 LEAKYD=build/rel/leakyd tools/bench/providers.sh
#
# Only 127.0.0.1 is used.  Everything started here is stopped, and the temp
# dir removed, on exit (including ^C).  Needs wrk and curl: `tools/deps.sh
# test`.  Builds nothing of leakyd: run `make` first.
set -eu

CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2s}
LEAKYD_THREADS=${LEAKYD_THREADS:-256}
STUBS_THREADS=${STUBS_THREADS:-256}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
LEAKYD=${LEAKYD:-$ROOT/build/rel/leakyd}
ADMIN_PASSWORD=bench-admin-password
SCENS="direct-openai gateway-openai direct-gemini gateway-gemini"
PROMPT="Say something short about leaky buckets."

die() { echo "providers.sh: $*" >&2; exit 1; }
missing() { echo "providers.sh: $1 not found; run: tools/deps.sh test" >&2; exit 69; }

# --- preconditions -----------------------------------------------------------
command -v wrk >/dev/null 2>&1 || missing wrk
command -v curl >/dev/null 2>&1 || missing curl
[ -x "$LEAKYD" ] || die "$LEAKYD is not built; run: make"
case $RUNS in '' | *[!0-9]* | 0) die "RUNS must be a positive integer" ;; esac
for v in "$CONNS" "$THREADS" "$LEAKYD_THREADS" "$STUBS_THREADS"; do
	case $v in '' | *[!0-9]* | 0) die "CONNS, THREADS, LEAKYD_THREADS and STUBS_THREADS must be positive integers" ;; esac
done
for d in "$DURATION" "$WARMUP"; do
	case ${d%s} in '' | *[!0-9]*) die "durations must be whole seconds, e.g. 10s" ;; esac
done
if [ "${DURATION%s}" -lt 1 ] || [ "${DURATION%s}" -gt 300 ] || [ "${WARMUP%s}" -gt 60 ]; then
	die "DURATION must be 1s..300s and WARMUP at most 60s"
fi
[ "$LEAKYD_THREADS" -ge "$CONNS" ] ||
	echo "providers.sh: warning: LEAKYD_THREADS=$LEAKYD_THREADS < CONNS=$CONNS;" \
		"civetweb leaves the extra connections unserved" >&2
# the stubs serve wrk (direct rows) or the gateway's pool (up to CONNS
# upstream connections per provider, and idle ones of the other provider)
[ "$STUBS_THREADS" -ge $((2 * CONNS)) ] ||
	echo "providers.sh: warning: STUBS_THREADS=$STUBS_THREADS < 2 x CONNS;" \
		"stub connections may wait unserved" >&2
# wrk refuses more threads than connections
WT=$((THREADS < CONNS ? THREADS : CONNS))

TICK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/leaky-bench-providers.XXXXXX")
PIDS=""

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE # e.g. piped into head: still clean up

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

[log]
level = $1
access = no

[limits]
# never binding: the call path is measured, not refusals (the admission and
# billing of /v1 are still done on every request)
token_capacity = 1000000000
token_rate = 1000000000
request_limit = 1000000000

[provider.openai]
base_url = $STUBS/openai/v1
format = openai
credential = none
bulkhead = 1000
pool_size = 256
timeout_ms = 10000

[provider.gemini]
base_url = $STUBS/gemini/v1beta
format = gemini
credential = none
bulkhead = 1000
pool_size = 256
timeout_ms = 10000

[model.gpt-4o-mini]
provider = openai
price_input = 150000
price_cached_input = 75000
price_output = 600000

[model.gemini-2.0-flash]
provider = gemini
price_input = 100000
price_cached_input = 25000
price_output = 400000
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

r=$(curl -sf -m 10 -H 'Content-Type: application/json' \
	-d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" "$GW/api/v1/auth/login") ||
	die "login as admin failed"
TOKEN=$(echo "$r" | json_str token)
ADMIN=$(echo "$r" | json_str userId)
r=$(curl -sf -m 10 -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \
	-d "{\"userId\":\"$ADMIN\",\"name\":\"bench-providers\"}" "$GW/api/v1/auth/api-keys") ||
	die "creating an API key failed"
KEY=$(echo "$r" | json_str apiKey)
case $KEY in lt_*) ;; *) die "no API key in: $r" ;; esac
# /v1 is billed: the admin's pools must cover every call of the runs
for p in openai gemini; do
	curl -sf -m 10 -o /dev/null -H 'Content-Type: application/json' \
		-H "Authorization: Bearer $TOKEN" \
		-d "{\"userId\":\"$ADMIN\",\"provider\":\"$p\",\"tokens\":1000000000000000,\"reason\":\"bench\"}" \
		"$GW/admin/v1/quotas/grant" || die "granting the $p pool failed"
done

# --- scenarios -------------------------------------------------------------------
OPENAI_BODY="{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"$PROMPT\"}],\"max_tokens\":16}"
GEMINI_BODY="{\"model\":\"gemini-2.0-flash\",\"messages\":[{\"role\":\"user\",\"content\":\"$PROMPT\"}],\"max_tokens\":16}"
NATIVE_BODY="{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"$PROMPT\"}]}],\"generationConfig\":{\"maxOutputTokens\":16}}"

write_lua() { # SCEN BODY [API-KEY]
	{
		echo 'wrk.method = "POST"'
		echo 'wrk.headers["Content-Type"] = "application/json"'
		[ $# -lt 3 ] || echo "wrk.headers[\"X-Api-Key\"] = \"$3\""
		echo "wrk.body = '$2'"
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
	} >"$TMP/$1.lua"
}
write_lua direct-openai "$OPENAI_BODY"
write_lua gateway-openai "$OPENAI_BODY" "$KEY"
write_lua direct-gemini "$NATIVE_BODY"
write_lua gateway-gemini "$GEMINI_BODY" "$KEY"
echo "$STUBS/openai/v1/chat/completions" >"$TMP/direct-openai.url"
echo "$GW/v1/chat/completions" >"$TMP/gateway-openai.url"
echo "$STUBS/gemini/v1beta/models/gemini-2.0-flash:generateContent" >"$TMP/direct-gemini.url"
echo "$GW/v1/chat/completions" >"$TMP/gateway-gemini.url"

provider_of() { case $1 in *openai) echo openai ;; *gemini) echo gemini ;; esac; }

# One request per scenario with curl: 200 and the expected shape.
check_once() { # SCEN BODY WANT [API-KEY]
	if [ $# -ge 4 ]; then
		out=$(curl -s -m 10 -w '\n%{http_code}' -H 'Content-Type: application/json' \
			-H "X-Api-Key: $4" -d "$2" "$(cat "$TMP/$1.url")") || true
	else
		out=$(curl -s -m 10 -w '\n%{http_code}' -H 'Content-Type: application/json' \
			-d "$2" "$(cat "$TMP/$1.url")") || true
	fi
	code=$(echo "$out" | tail -n 1)
	if [ "$code" != 200 ] || ! echo "$out" | grep -qF "$3"; then
		die "$1: one request answered $code, not 200 with $3: $out"
	fi
}
check_once direct-openai "$OPENAI_BODY" '"object":"chat.completion"'
check_once gateway-openai "$OPENAI_BODY" '"model":"gpt-4o-mini"' "$KEY"
check_once direct-gemini "$NATIVE_BODY" '"candidates"'
check_once gateway-gemini "$GEMINI_BODY" '"model":"gemini-2.0-flash"' "$KEY"

# PROVIDER -> "ok_calls failed_calls retries" from the gateway's /metrics
upstream_counts() {
	m=$(curl -sf -m 5 "$GW/metrics") || return 1
	echo "$m" | awk -v p="provider=\"$1\"" '
		index($0, "leaky_provider_requests_total{") == 1 && index($0, p) {
			if (index($0, "outcome=\"ok\"")) ok += $NF; else bad += $NF }
		index($0, "leaky_provider_retries_total{") == 1 && index($0, p) { retry += $NF }
		END { printf "%d %d %d\n", ok, bad, retry }'
}

counts() { # SCEN -> upstream_counts of its provider for gateway rows, else "0 0 0"
	case $1 in
	gateway-*)
		c=$(upstream_counts "$(provider_of "$1")") || c=""
		[ -n "$c" ] || die "cannot read $GW/metrics"
		echo "$c"
		;;
	*) echo 0 0 0 ;;
	esac
}

# One wrk run.  Appends to $TMP/SCEN.runs:
# "reqs rps p50 p99 err non2xx non200 gw_us stubs_us other% upstream_per_req
# steal%" (steal: the part of other% the hypervisor gave to other VMs)
measure() { # SCEN DURATION
	scen=$1 dur=$2
	u=$(counts "$scen")
	# shellcheck disable=SC2086 # three numbers, split on purpose
	set -- $u
	uok0=$1 ubad0=$2 uret0=$3
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
	u=$(counts "$scen")
	# shellcheck disable=SC2086
	set -- $u
	uok=$(($1 - uok0)) ubad=$(($2 - ubad0)) uret=$(($3 - uret0))
	line=$(parse_wrk <"$TMP/$scen.out")
	# shellcheck disable=SC2086 # split on purpose
	set -- $line
	if [ "$1" = 0 ] || [ "$5" != 0 ] || [ "$6" != 0 ] || [ "$7" != 0 ] || [ "$ubad" != 0 ] || [ "$uret" != 0 ]; then
		echo "providers.sh: $scen: $1 requests, $5 socket errors, $6 non-2xx/3xx, $7 not 200" \
			"(-1: no count), upstream $ubad failed calls and $uret retries; wrk said:" >&2
		sed 's/^/    /' "$TMP/$scen.out" >&2
		echo "  gateway log (tail):" >&2
		tail -n 5 "$TMP/gw.log" | sed 's/^/    /' >&2
		die "$scen: not every answer was a 200 from one upstream call"
	fi
	extra=$(awk -v n="$1" -v g=$((g1 - g0)) -v s=$((s1 - s0)) -v tick="$TICK" -v u="$uok" \
		-v o=$((b1 - b0 - (g1 - g0) - (s1 - s0) - (k1 - k0))) -v st=$((st1 - st0)) \
		-v ncpu="$(nproc)" -v secs="${dur%s}" \
		'BEGIN {
			other = o * 100 / (tick * ncpu * secs)
			printf "%.1f %.1f %.0f %.3f %.0f", g * 1e6 / tick / n, s * 1e6 / tick / n,
				other < 0 ? 0 : other, u / n, st * 100 / (tick * ncpu * secs) }')
	LAST="$line $extra"
	echo "$LAST" >>"$TMP/$scen.runs"
}

echo "# providers.sh: non-streamed chat completions, gateway vs direct to the stubs"
echo "# wrk -t$WT -c$CONNS -d$DURATION --latency -s SCENARIO.lua URL; $RUNS rounds, median reported"
echo "# $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
	"$(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# stubs:   $LEAKYD --stubs-only, pid $STUBS_PID, $STUBS, threads=$STUBS_THREADS, latency 0"
echo "# gateway: $LEAKYD, pid $GW_PID, $GW, threads=$LEAKYD_THREADS, level=warn, access log no," \
	"bulkhead 1000, pool_size 256"

for s in $SCENS; do # warm-up, checked but not recorded
	measure "$s" "$WARMUP"
	rm -f "$TMP/$s.runs"
done
r=1
while [ $r -le "$RUNS" ]; do
	for s in $SCENS; do
		measure "$s" "$DURATION"
		echo "$LAST" | awk -v n="$s" -v r="$r" '{
			printf "  round %d %-14s %7d req/s  p50 %7.3f ms  p99 %7.3f ms  CPU us/req: gateway %6.1f stubs %5.1f  other load %2d%% (steal %d%%)",
				r, n, $2, $3, $4, $8, $9, $10, $12
			if (n ~ /^gateway/) printf "  upstream calls/req %.3f", $11
			printf "\n" }'
	done
	r=$((r + 1))
done

median() { sort -n -k2,2 "$TMP/$1.runs" | awk -v m=$(((RUNS + 1) / 2)) 'NR == m'; }
echo
echo "median of $RUNS         req/s    p50 ms    p99 ms  gateway CPU us/req  stubs CPU us/req  total  other load (steal)"
for s in $SCENS; do
	median "$s" | awk -v n="$s" '{
		printf "%-14s %9d %9.3f %9.3f %19.1f %17.1f %6.1f %10d%% (%d%%)\n", n, $2, $3, $4, $8, $9, $8 + $9, $10, $12 }'
done
echo
echo "added by the gateway (gateway - direct, same round; median over $RUNS rounds)"
echo "provider      p50 ms    p99 ms  leakyd CPU us/req (both processes)"
for p in openai gemini; do
	paste -d ' ' "$TMP/direct-$p.runs" "$TMP/gateway-$p.runs" | awk '{
		h = NF / 2 # direct fields, then gateway fields
		print $(h + 3) - $3, $(h + 4) - $4, ($(h + 8) + $(h + 9)) - ($8 + $9) }' >"$TMP/added-$p"
	m=$(((RUNS + 1) / 2))
	a=$(sort -g -k1,1 "$TMP/added-$p" | awk -v m=$m 'NR == m { print $1 }')
	b=$(sort -g -k2,2 "$TMP/added-$p" | awk -v m=$m 'NR == m { print $2 }')
	c=$(sort -g -k3,3 "$TMP/added-$p" | awk -v m=$m 'NR == m { print $3 }')
	printf "%-10s %+9.3f %+9.3f %+12.1f\n" "$p" "$a" "$b" "$c"
done
