#!/bin/sh
# deps.sh — install the Debian packages leakyd needs to build, run and test.
#
# Checks each package with dpkg-query and installs only what is missing:
# with apt-get when running as root, otherwise it prints the exact command
# and fails.  Called by `make run`, `make test` and `make fuzz-smoke`.
#   tools/deps.sh build   # libraries and tools to build and run
#   tools/deps.sh test    # plus everything the test suite uses
set -eu

build="gcc make pkg-config libsqlite3-dev liblmdb-dev libcivetweb-dev libcjson-dev
libsodium-dev libbearssl-dev libinih-dev"
test="$build libcmocka-dev python3 python3-pytest mandoc prometheus sqlite3 lmdb-utils
wrk nginx-light clang libclang-rt-14-dev clang-format cppcheck"

case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
*) echo "usage: tools/deps.sh [build|test]" >&2; exit 64 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps.sh: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: not root; run: sudo apt-get update && sudo apt-get install -y$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# nginx-light's package starts a default site on port 80; tests and benchmarks
# run their own nginx on loopback, so stop the packaged one if it started.
if echo "$missing" | grep -q nginx; then
	(systemctl stop nginx 2>/dev/null || service nginx stop 2>/dev/null || true) >/dev/null 2>&1
fi
exit 0
