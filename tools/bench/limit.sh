#!/bin/sh
# limit.sh — what a rate-limit admission costs in LMDB, in-process.
#
# Compiles tools/bench/limit_micro.c into a temp dir against a copy of
# build/rel/libleaky.a and runs it on a fresh LMDB environment opened with
# lt_kv_open (MDB_NOSYNC | MDB_NOTLS, as leakyd opens buckets/).  Prints,
# on 1 and on 2 threads, admissions per second of lt_bucket_admit_all with
# 1 item and with 3 items, next to the raw LMDB write-transaction rate
# (mdb_txn_begin + one mdb_put of a 48-byte value + mdb_txn_commit) on the
# same environment.  See the comment in limit_micro.c.
#
#   tools/bench/limit.sh
#   OPS=500000 REPS=7 tools/bench/limit.sh
#
# The temp dir is removed on exit (including ^C).  Needs a C compiler with
# the build's -dev packages: `tools/deps.sh test`.  Builds nothing of
# leakyd: run `make` first.
set -eu

OPS=${OPS:-200000}
REPS=${REPS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIB=$ROOT/build/rel/libleaky.a
PKGS="sqlite3 lmdb libsodium libcjson inih"
CC=${CC:-cc}

die() { echo "limit.sh: $*" >&2; exit 1; }
missing() { echo "limit.sh: $1 not found; run: tools/deps.sh test" >&2; exit 69; }

command -v "$CC" >/dev/null 2>&1 || missing "$CC (package gcc)"
[ -f "$LIB" ] || die "$LIB is not built; run: make"
# shellcheck disable=SC2086 # a list of packages
pkg-config --exists $PKGS 2>/dev/null || missing "pkg-config files for: $PKGS"
case $OPS in '' | *[!0-9]*) die "OPS must be a number" ;; esac
case $REPS in '' | *[!0-9]* | 0) die "REPS must be a positive integer" ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/leaky-bench-limit.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "# limit.sh: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
	"$(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# data dir on: $(df -P "$TMP" | awk 'NR == 2 { print $1 }')" \
	"($(stat -f -c %T "$TMP" 2>/dev/null || echo unknown))"

# A copy: another `make` in this tree rewrites the archive in place.
cp "$LIB" "$TMP/libleaky.a"
# shellcheck disable=SC2046,SC2086
"$CC" -O2 -std=c11 -D_DEFAULT_SOURCE -I"$ROOT/src" -I"$ROOT/build/rel/gen" \
	$(pkg-config --cflags $PKGS) -o "$TMP/limit_micro" "$ROOT/tools/bench/limit_micro.c" \
	"$TMP/libleaky.a" $(pkg-config --libs $PKGS) -lcivetweb -lbearssl -lpthread -lm ||
	die "cannot build tools/bench/limit_micro.c"
"$TMP/limit_micro" "$TMP/buckets" "$OPS" "$REPS"
