#!/bin/sh
# analytics.sh — what the analytics store costs in-process: the ingest rate
# from a real event log into analytics.db, and a report over one day
# holding one million events, from the minute rollups versus scanning the
# day table.
#
# Compiles tools/bench/analytics_micro.c into a temp dir against a copy of
# build/rel/libleaky.a and runs it there: EVENTS token-usage events over
# one UTC day (USERS users, 2 providers, 3 models) are written to a fresh
# event log, ingested by lt_an_ingest_drain (batches of 1000, one
# transaction each, synchronous=NORMAL), then the report-style sums are
# timed both ways (median of REPS) and checked to agree.  See the comment
# in analytics_micro.c.
#
#   tools/bench/analytics.sh
#   EVENTS=200000 USERS=1000 REPS=9 tools/bench/analytics.sh
#
# The temp dir (about 0.5 KiB of log and ~0.3 KiB of analytics.db per
# event) is removed on exit (including ^C).  Set TMPDIR to the data disk
# to measure it.  Needs a C compiler with the build's -dev packages:
# `tools/deps.sh test`.  Builds nothing of leakyd: run `make` first.
set -eu

EVENTS=${EVENTS:-1000000}
USERS=${USERS:-100}
REPS=${REPS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIB=$ROOT/build/rel/libleaky.a
PKGS="sqlite3 lmdb libsodium libcjson inih"
CC=${CC:-cc}

die() { echo "analytics.sh: $*" >&2; exit 1; }
missing() { echo "analytics.sh: $1 not found; run: tools/deps.sh test" >&2; exit 69; }

command -v "$CC" >/dev/null 2>&1 || missing "$CC (package gcc)"
[ -f "$LIB" ] || die "$LIB is not built; run: make"
# shellcheck disable=SC2086 # a list of packages
pkg-config --exists $PKGS 2>/dev/null || missing "pkg-config files for: $PKGS"
case $EVENTS in '' | *[!0-9]*) die "EVENTS must be a positive integer" ;; esac
case $USERS in '' | *[!0-9]* | 0) die "USERS must be a positive integer" ;; esac
case $REPS in '' | *[!0-9]* | 0) die "REPS must be a positive integer" ;; esac
[ "$EVENTS" -ge 1000 ] || die "EVENTS must be at least 1000"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/leaky-bench-analytics.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "# analytics.sh: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
	"$(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# data dir on: $(df -P "$TMP" | awk 'NR == 2 { print $1 }')" \
	"($(stat -f -c %T "$TMP" 2>/dev/null || echo unknown))"

# A copy: another `make` in this tree rewrites the archive in place.
cp "$LIB" "$TMP/libleaky.a"
# shellcheck disable=SC2046,SC2086
"$CC" -O2 -std=c11 -D_DEFAULT_SOURCE -I"$ROOT/src" -I"$ROOT/build/rel/gen" \
	$(pkg-config --cflags $PKGS) -o "$TMP/analytics_micro" \
	"$ROOT/tools/bench/analytics_micro.c" \
	"$TMP/libleaky.a" $(pkg-config --libs $PKGS) -lcivetweb -lbearssl -lpthread -lm ||
	die "cannot build tools/bench/analytics_micro.c"
"$TMP/analytics_micro" "$TMP" "$EVENTS" "$USERS" "$REPS"
