#!/bin/sh
# lib.sh — the helpers the HTTP benchmarks share (sourced, not run):
# process clean-up on exit, HTTP and log waits, CPU accounting from /proc,
# wrk output parsing, a JSON string field.  The sourcing script sets TMP
# (its temp dir), PIDS (the processes to stop) and TICK (clock ticks per
# second) before calling them, and installs the traps:
#
#   trap cleanup EXIT; trap 'exit 130' INT; ...
#
# Used by consume.sh and providers.sh (all of it), auth.sh and healthz.sh
# (the waits and json_str; they keep their own variants of the rest).

http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || echo 000; }

wait_status() { # URL WANT SECONDS
	n=0
	while [ "$(http_status "$1")" != "$2" ]; do
		n=$((n + 1))
		[ $n -le $(($3 * 10)) ] || return 1
		sleep 0.1
	done
}

# FILE KEY PID SECONDS -> the number after "KEY": in the first log line that
# has it and says "listening on"; fails if PID exits or time runs out.
wait_log_port() {
	n=0
	while :; do
		v=$(grep 'listening on' "$1" 2>/dev/null | sed -n "s/.*\"$2\":\\([0-9][0-9]*\\).*/\\1/p" | head -n 1)
		[ -z "$v" ] || { echo "$v"; return 0; }
		kill -0 "$3" 2>/dev/null || return 1
		n=$((n + 1))
		[ $n -le $(($4 * 10)) ] || return 1
		sleep 0.1
	done
}

wait_log_line() { # FILE FIXED-STRING SECONDS
	n=0
	until grep -qF "$2" "$1" 2>/dev/null; do
		n=$((n + 1))
		[ $n -le $(($3 * 10)) ] || return 1
		sleep 0.1
	done
}

cpu_ticks() { # PID -> utime+stime in clock ticks (all threads)
	# after the ")" that ends comm: state is $1, utime $12, stime $13
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

box_busy() { # "busy steal": ticks of the whole machine busy (user nice system
	# irq softirq steal) and, of those, stolen by the hypervisor (other VMs)
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $9; exit }' /proc/stat
}

# shellcheck disable=SC2034 # KIDS is read by the sourcing script
kid_ticks() { # -> $KIDS: CPU ticks of this shell's waited-for children (wrk, mostly).
	# `times` must run in this shell, not in a $(...) or pipeline subshell.
	times >"$TMP/times"
	KIDS=$(awk -v tick="$TICK" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
		printf "%d\n", t * tick + 0.5 }' "$TMP/times")
}

# wrk --latency output (+ the Lua done() line) ->
# "requests req/s p50_ms p99_ms socket_errors non2xx non200"; non200 is -1
# when the Lua line is missing
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
		return v + 0
	}
	BEGIN { non200 = -1 }
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/requests in/ { reqs = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { bad = $5 }
	$1 == "non-200:" { non200 = $2 }
	END { printf "%d %.2f %.3f %.3f %d %d %d\n", reqs, rps, p50, p99, err + 0, bad + 0, non200 }'
}

json_str() { # NAME < JSON -> the string value of "NAME"
	sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}

# shellcheck disable=SC2153 # PIDS and TMP are the sourcing script's
cleanup() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $PIDS; do
		i=0 # bounded wait: leakyd drains on TERM
		while kill -0 "$p" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
