#!/bin/sh
# evlog.sh — what the event log costs in-process: appends, reads, open.
#
# Compiles tools/bench/evlog_micro.c into a temp dir against a copy of
# build/rel/libleaky.a and runs it on fresh event-log directories opened
# with lt_evlog_open (64 MiB segments, as leakyd opens events/).  Prints
# records/s, calls/s and µs per call of lt_evlog_append with 1, 16 and 256
# records of 200-byte payloads per call, with fdatasync per call (the real
# cost) and without, next to a raw pwrite (+ fdatasync) of the same bytes
# on a plain file in the same directory; then read throughput (the whole
# topic, and 256 records from random offsets) and the scan at open.  See
# the comment in evlog_micro.c.
#
#   tools/bench/evlog.sh
#   SECONDS_PER_RUN=1 REPS=7 tools/bench/evlog.sh
#
# The temp dir is removed on exit (including ^C).  The numbers depend on
# the disk under $TMPDIR (printed first): set TMPDIR to the data disk to
# measure it.  Needs a C compiler with the build's -dev packages:
# `tools/deps.sh test`.  Builds nothing of leakyd: run `make` first.
set -eu

SECS=${SECONDS_PER_RUN:-0.5}
REPS=${REPS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIB=$ROOT/build/rel/libleaky.a
PKGS="sqlite3 lmdb libsodium libcjson inih"
CC=${CC:-cc}

die() { echo "evlog.sh: $*" >&2; exit 1; }
missing() { echo "evlog.sh: $1 not found; run: tools/deps.sh test" >&2; exit 69; }

command -v "$CC" >/dev/null 2>&1 || missing "$CC (package gcc)"
[ -f "$LIB" ] || die "$LIB is not built; run: make"
# shellcheck disable=SC2086 # a list of packages
pkg-config --exists $PKGS 2>/dev/null || missing "pkg-config files for: $PKGS"
case $SECS in '' | *[!0-9.]* | *.*.*) die "SECONDS_PER_RUN must be a number" ;; esac
case $REPS in '' | *[!0-9]* | 0) die "REPS must be a positive integer" ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/leaky-bench-evlog.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "# evlog.sh: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
	"$(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# data dir on: $(df -P "$TMP" | awk 'NR == 2 { print $1 }')" \
	"($(stat -f -c %T "$TMP" 2>/dev/null || echo unknown))"

# A copy: another `make` in this tree rewrites the archive in place.
cp "$LIB" "$TMP/libleaky.a"
# shellcheck disable=SC2046,SC2086
"$CC" -O2 -std=c11 -D_DEFAULT_SOURCE -I"$ROOT/src" -I"$ROOT/build/rel/gen" \
	$(pkg-config --cflags $PKGS) -o "$TMP/evlog_micro" "$ROOT/tools/bench/evlog_micro.c" \
	"$TMP/libleaky.a" $(pkg-config --libs $PKGS) -lcivetweb -lbearssl -lpthread -lm ||
	die "cannot build tools/bench/evlog_micro.c"
"$TMP/evlog_micro" "$TMP/events" "$SECS" "$REPS"
