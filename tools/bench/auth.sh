#!/bin/sh
# auth.sh — what identity costs: one login (Argon2id) and one API-key
# authentication on the hot path, over HTTP and in-process.
#
# HTTP part.  Starts build/rel/leakyd twice on loopback, each with a
# throwaway data dir, LEAKYD_ADMIN_PASSWORD set and [log] access = no:
#   main   [auth] defaults (cache_size 4096, hash_concurrency 2)
#   small  [auth] cache_size = 8 (the minimum), for the cache-miss row
# registers user "bench" on each (POST /api/v1/auth/register), creates one
# API key on main and MISS_KEYS keys on small (POST /api/v1/auth/api-keys),
# then:
#   1. login: wrk with a Lua script POSTing {"username","password"} to
#      /api/v1/auth/login, LOGIN_DURATION each, with 1 connection (sequential
#      logins: mean/p50/p99), 2 and 4 (throughput).  Every answer must be 200.
#   2. hot path, RUNS rounds (median by req/s), each round running every
#      scenario once in turn:
#        healthz     GET /healthz (no auth; the same server's floor)
#        key-403     GET /api/v1/auth/api-keys?userId=<someone else> with
#                    X-Api-Key: authentication (cache hit), then the handler
#                    answers 403 before any DB read: auth and nothing else
#        validate    GET /api/v1/auth/api-keys/validate, X-Api-Key: the
#                    handler calls lt_auth_authenticate (cache hit), then
#                    reads the api_keys row for the name (1 SQLite read)
#        me-key      GET /api/v1/auth/me, X-Api-Key: cache hit, then the
#                    handler reads users + memberships (2 SQLite reads)
#        me-jwt      GET /api/v1/auth/me, Authorization: Bearer <JWT>:
#                    the JWT cache hit, same handler
#        me-miss     GET /api/v1/auth/me on "small", X-Api-Key round-robin
#                    over MISS_KEYS keys (cycle > cache): every
#                    authentication misses (api_keys + users read, keyed
#                    BLAKE2b, cache insert), then the same handler
#      wrk -tTHREADS -cCONNS -dDURATION --latency.  key-403 answers 403 by
#      design; every other scenario must answer 200 only.
# Each row: req/s, p50/p99, leakyd CPU per request (utime+stime of the
# server from /proc/PID/stat; login rows split user/system), the ratio to
# healthz, and "other load" (CPU used by anything but the server and wrk;
# more than a few % means the run was disturbed), as in healthz.sh.
#
# In-process part (MICRO=1, default): compiles tools/bench/auth_micro.c into
# the temp dir against a copy of build/rel/libleaky.a and runs it on a
# fresh data dir: lt_auth_authenticate hit/miss for API keys and JWTs, their
# components, Argon2id hash/verify.  See the comment in auth_micro.c.
#
#   tools/bench/auth.sh
#   RUNS=5 DURATION=10s LOGIN_DURATION=10s tools/bench/auth.sh
#   HTTP=0 tools/bench/auth.sh            # the microbenchmark only
#   MICRO=0 tools/bench/auth.sh           # HTTP only
#
# Only 127.0.0.1 is used.  Everything started here is stopped, and the temp
# dir removed, on exit (including ^C).  Needs wrk, curl and a C compiler
# with the build's -dev packages: `tools/deps.sh test`.  Builds nothing of
# leakyd: run `make` first.
set -eu

CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
LOGIN_DURATION=${LOGIN_DURATION:-10s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2s}
LEAKYD_THREADS=${LEAKYD_THREADS:-64}
MISS_KEYS=${MISS_KEYS:-64}
HTTP=${HTTP:-1}
MICRO=${MICRO:-1}
MICRO_KEYS=${MICRO_KEYS:-32768}
MICRO_REPS=${MICRO_REPS:-7}
ARGON_N=${ARGON_N:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
LEAKYD=${LEAKYD:-$ROOT/build/rel/leakyd}
LIB=$ROOT/build/rel/libleaky.a
PASSWORD=bench-password-123
PKGS="sqlite3 lmdb libsodium libcjson inih"

die() { echo "auth.sh: $*" >&2; exit 1; }
missing() { echo "auth.sh: $1 not found; run: tools/deps.sh test" >&2; exit 69; }

# --- preconditions -----------------------------------------------------------
if [ "$HTTP" = 1 ]; then
	command -v wrk >/dev/null 2>&1 || missing wrk
	command -v curl >/dev/null 2>&1 || missing curl
	[ -x "$LEAKYD" ] || die "$LEAKYD is not built; run: make"
	case $RUNS in '' | *[!0-9]* | 0) die "RUNS must be a positive integer" ;; esac
	for d in "$DURATION" "$LOGIN_DURATION" "$WARMUP"; do
		case ${d%s} in '' | *[!0-9]*) die "durations must be whole seconds, e.g. 10s" ;; esac
	done
	case $MISS_KEYS in '' | *[!0-9]*) die "MISS_KEYS must be a number" ;; esac
	[ "$MISS_KEYS" -ge 32 ] || die "MISS_KEYS must be at least 32 (4 x the small cache)"
	[ "$LEAKYD_THREADS" -ge "$CONNS" ] 2>/dev/null ||
		echo "auth.sh: warning: LEAKYD_THREADS=$LEAKYD_THREADS < CONNS=$CONNS;" \
			"civetweb leaves the extra connections unserved" >&2
fi
if [ "$MICRO" = 1 ]; then
	CC=${CC:-cc}
	command -v "$CC" >/dev/null 2>&1 || missing "$CC (package gcc)"
	[ -f "$LIB" ] || die "$LIB is not built; run: make"
	# shellcheck disable=SC2086 # a list of packages
	pkg-config --exists $PKGS 2>/dev/null || missing "pkg-config files for: $PKGS"
fi

TICK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/leaky-bench-auth.XXXXXX")
PIDS=""

cleanup() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $PIDS; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

echo "# auth.sh: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
	"$(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"

# --- in-process microbenchmark -----------------------------------------------
if [ "$MICRO" = 1 ]; then
	# A copy: another `make` in this tree rewrites the archive in place.
	cp "$LIB" "$TMP/libleaky.a"
	# shellcheck disable=SC2046,SC2086
	"$CC" -O2 -std=c11 -D_DEFAULT_SOURCE -I"$ROOT/src" -I"$ROOT/build/rel/gen" \
		$(pkg-config --cflags $PKGS) -o "$TMP/auth_micro" "$ROOT/tools/bench/auth_micro.c" \
		"$TMP/libleaky.a" $(pkg-config --libs $PKGS) -lcivetweb -lbearssl -lpthread -lm ||
		die "cannot build tools/bench/auth_micro.c"
	echo
	LEAKYD_ADMIN_PASSWORD=bench-admin-password \
		"$TMP/auth_micro" "$TMP/micro.data" "$MICRO_KEYS" "$MICRO_REPS" "$ARGON_N"
	rm -rf "$TMP/micro.data"
fi
[ "$HTTP" = 1 ] || exit 0

# --- HTTP ----------------------------------------------------------------------
free_port() {
	if [ -x /usr/bin/python3 ]; then
		/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
	else
		p=$((20000 + $$ % 20000))
		while ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
		echo $p
	fi
}

cpu_split() { # PID -> "utime stime" in clock ticks
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'
}

box_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

kid_ticks() { # -> $KIDS: CPU ticks of this shell's waited-for children (wrk)
	times >"$TMP/times"
	KIDS=$(awk -v tick="$TICK" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
		printf "%d\n", t * tick + 0.5 }' "$TMP/times")
}

# wrk --latency output -> "requests req/s p50_ms p99_ms socket_errors non2xx avg_ms"
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
		return v + 0
	}
	$1 == "Latency" && avg == "" { avg = ms($2) }
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/requests in/ { reqs = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { bad = $5 }
	END { printf "%d %.2f %.3f %.3f %d %d %.3f\n", reqs, rps, p50, p99, err + 0, bad + 0, avg + 0 }'
}

start_leakyd() { # NAME CACHE_SIZE -> $TMP/NAME.{port,pid}
	name=$1
	port=$(free_port)
	cat >"$TMP/$name.conf" <<EOF
[http]
listen = 127.0.0.1:$port
threads = $LEAKYD_THREADS
max_inflight = $((LEAKYD_THREADS * 4))

[storage]
data_dir = $TMP/$name.data

[auth]
cache_size = $2

[limits]
# never binding: authentication is measured, not request-limit refusals
request_limit = 1000000000

[log]
level = info
access = no
file = $TMP/$name.log
EOF
	LEAKYD_ADMIN_PASSWORD=bench-admin-password "$LEAKYD" -c "$TMP/$name.conf" \
		2>>"$TMP/$name.stderr" &
	pid=$!
	PIDS="$PIDS $pid"
	if ! wait_status "http://127.0.0.1:$port/readyz" 200 30; then
		cat "$TMP/$name.stderr" "$TMP/$name.log" >&2 2>/dev/null || true
		die "leakyd ($name) never answered /readyz with 200"
	fi
	echo "$port" >"$TMP/$name.port"
	echo "$pid" >"$TMP/$name.pid"
	echo "# $name: $LEAKYD, pid $pid, 127.0.0.1:$port, threads=$LEAKYD_THREADS, [auth] cache_size=$2, access log no"
}

post() { # URL BODY [HEADER] -> body on stdout; fails unless 2xx
	if [ $# -ge 3 ]; then
		curl -sf -m 10 -H 'Content-Type: application/json' -H "$3" -d "$2" "$1"
	else
		curl -sf -m 10 -H 'Content-Type: application/json' -d "$2" "$1"
	fi
}

setup_user() { # NAME NKEYS -> $TMP/NAME.{token,user,keys}
	base=http://127.0.0.1:$(cat "$TMP/$1.port")
	r=$(post "$base/api/v1/auth/register" \
		"{\"username\":\"bench\",\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}") ||
		die "$1: register failed"
	echo "$r" | json_str token >"$TMP/$1.token"
	echo "$r" | json_str userId >"$TMP/$1.user"
	user=$(cat "$TMP/$1.user")
	: >"$TMP/$1.keys"
	i=0
	while [ $i -lt "$2" ]; do
		r=$(post "$base/api/v1/auth/api-keys" "{\"userId\":\"$user\",\"name\":\"bench-$i\"}" \
			"Authorization: Bearer $(cat "$TMP/$1.token")") ||
			die "$1: creating API key $i failed"
		echo "$r" | json_str apiKey >>"$TMP/$1.keys"
		i=$((i + 1))
	done
	n=$(grep -c "^lt_" "$TMP/$1.keys" || true)
	[ "$n" = "$2" ] || { tail -n 3 "$TMP/$1.keys" >&2; die "$1: got $n of $2 API keys"; }
}

cat >"$TMP/login.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"bench","password":"$PASSWORD"}'
EOF

cat >"$TMP/keys.lua" <<'EOF'
-- X-Api-Key round-robin over the lines of $KEYS_FILE; threads start apart.
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local nthreads = 0
function setup(thread)
	thread:set("start", nthreads * 37)
	nthreads = nthreads + 1
end
function init(args) i = start or 0 end
function request()
	i = i + 1
	return wrk.format(nil, nil, { ["X-Api-Key"] = keys[(i % #keys) + 1] })
end
EOF

# One wrk run against server NAME with the given wrk arguments; appends
# "reqs rps p50 p99 err bad avg cpu_us_per_req user_us sys_us other%" to
# $TMP/SCEN.runs and prints it.
measure() { # SCEN NAME DURATION WRK-ARGS...
	scen=$1 name=$2 dur=$3
	shift 3
	pid=$(cat "$TMP/$name.pid")
	# shellcheck disable=SC2046 # two numbers, split on purpose
	set -- $(cpu_split "$pid") "$@"
	u0=$1 s0=$2
	shift 2
	kid_ticks
	b0=$(box_busy) k0=$KIDS
	wrk -d"$dur" --latency "$@" >"$TMP/$scen.out"
	# shellcheck disable=SC2046
	set -- $(cpu_split "$pid")
	u1=$1 s1=$2
	kid_ticks
	b1=$(box_busy) k1=$KIDS
	line=$(parse_wrk <"$TMP/$scen.out")
	c=$((u1 - u0 + s1 - s0))
	extra=$(echo "$line" | awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v tick="$TICK" '{
		n = $1 ? $1 : 1
		printf "%.1f %.1f %.1f", (u + s) * 1e6 / tick / n, u * 1e6 / tick / n, s * 1e6 / tick / n }')
	other=$(awk -v o=$((b1 - b0 - c - (k1 - k0))) -v tick="$TICK" -v n="$(nproc)" \
		-v s="${dur%s}" 'BEGIN { v = o * 100 / (tick * n * s); printf "%.0f", v < 0 ? 0 : v }')
	echo "$line $extra $other" >>"$TMP/$scen.runs"
	LAST="$line $extra $other"
}

check_answers() { # SCEN EXPECT_NON2XX(0|1)
	set -- "$1" "$2" $LAST
	if [ "$7" != 0 ] || { [ "$2" = 0 ] && [ "$8" != 0 ]; } || { [ "$2" = 1 ] && [ "$8" != "$3" ]; }; then
		echo "  ($1: socket errors or unexpected statuses; wrk said:)"
		sed 's/^/    /' "$TMP/$1.out"
	fi
}

echo
start_leakyd main 4096
start_leakyd small 8
setup_user main 1
setup_user small "$MISS_KEYS"
export KEYS_FILE="$TMP/small.keys" # read by keys.lua inside wrk
MAIN=http://127.0.0.1:$(cat "$TMP/main.port")
SMALL=http://127.0.0.1:$(cat "$TMP/small.port")
KEY=$(head -n 1 "$TMP/main.keys")
JWT=$(cat "$TMP/main.token")
OTHER=00000000-0000-4000-8000-000000000000
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Api-Key: $KEY" "$MAIN/api/v1/auth/me")" = 200 ] ||
	die "GET /me with the API key is not 200"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Api-Key: $KEY" \
	"$MAIN/api/v1/auth/api-keys?userId=$OTHER")" = 403 ] ||
	die "GET /api-keys?userId=<other> with the API key is not 403"

# --- 1. login --------------------------------------------------------------------
echo
echo "# 1. POST /api/v1/auth/login (Argon2id verify + RS256 sign), wrk -d$LOGIN_DURATION --latency -s login.lua, on main"
for c in 1 2 4; do
	t=$((c < THREADS ? c : THREADS))
	measure "login-c$c" main "$LOGIN_DURATION" -t"$t" -c"$c" -s "$TMP/login.lua" "$MAIN/api/v1/auth/login"
	check_answers "login-c$c" 0
done
echo
echo "clients  logins   logins/s   mean ms    p50 ms    p99 ms  CPU ms/login  (user  sys)  other load"
for c in 1 2 4; do
	awk -v c=$c '{ printf "%7d %7d %10.2f %9.1f %9.1f %9.1f %13.1f  (%5.1f %4.1f) %10d%%\n",
		c, $1, $2, $7, $3, $4, $8 / 1000, $9 / 1000, $10 / 1000, $11 }' "$TMP/login-c$c.runs"
done

# --- 2. hot path -------------------------------------------------------------------
echo
echo "# 2. authenticated GETs: wrk -t$THREADS -c$CONNS -d$DURATION --latency; $RUNS rounds, median reported"
SCENS="healthz key-403 validate me-key me-jwt me-miss"
run_scen() { # SCEN
	case $1 in
	healthz) measure healthz main "$2" -t"$THREADS" -c"$CONNS" "$MAIN/healthz" ;;
	key-403) measure key-403 main "$2" -t"$THREADS" -c"$CONNS" -H "X-Api-Key: $KEY" \
		"$MAIN/api/v1/auth/api-keys?userId=$OTHER" ;;
	validate) measure validate main "$2" -t"$THREADS" -c"$CONNS" -H "X-Api-Key: $KEY" \
		"$MAIN/api/v1/auth/api-keys/validate" ;;
	me-key) measure me-key main "$2" -t"$THREADS" -c"$CONNS" -H "X-Api-Key: $KEY" \
		"$MAIN/api/v1/auth/me" ;;
	me-jwt) measure me-jwt main "$2" -t"$THREADS" -c"$CONNS" -H "Authorization: Bearer $JWT" \
		"$MAIN/api/v1/auth/me" ;;
	me-miss) measure me-miss small "$2" -t"$THREADS" -c"$CONNS" \
		-s "$TMP/keys.lua" "$SMALL/api/v1/auth/me" ;;
	esac
}
for s in $SCENS; do # warm-up, not recorded
	run_scen "$s" "$WARMUP"
	rm -f "$TMP/$s.runs"
done
r=1
while [ $r -le "$RUNS" ]; do
	for s in $SCENS; do
		run_scen "$s" "$DURATION"
		echo "$LAST" | awk -v n="$s" -v r="$r" '{
			printf "  round %d %-9s %8d req/s  p50 %7.3f ms  p99 %7.3f ms  %6.1f us CPU/req  other load %2d%%  errors %d  non-2xx %d\n",
				r, n, $2, $3, $4, $8, $11, $5, $6 }'
		if [ "$s" = key-403 ]; then check_answers "$s" 1; else check_answers "$s" 0; fi
	done
	r=$((r + 1))
done

median() { sort -n -k2,2 "$TMP/$1.runs" | awk -v m=$(((RUNS + 1) / 2)) 'NR == m'; }
echo
echo "median of $RUNS     req/s    p50 ms    p99 ms  CPU us/req  req/s vs healthz  other load"
hz=$(median healthz | awk '{ print $2 }')
for s in $SCENS; do
	median "$s" | awk -v n="$s" -v hz="$hz" '{
		printf "%-10s %9d %9.3f %9.3f %11.1f %17.2f %10d%%\n", n, $2, $3, $4, $8, hz ? $2 / hz : 0, $11 }'
done
c=$(grep -c . "$TMP/small.keys")
echo "# me-miss: $c keys round-robin through an [auth] cache_size = 8 cache (server 'small')"
