# Shared helpers for the bench/*.sh scripts. Sourced, not run.

# repo_root: the repository this script lives in.
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)

# stats: read one number per line on stdin, print "n mean median p90 min max"
# (nearest-rank percentiles: p90 of 10 samples is the 9th smallest).
stats() {
	sort -g | awk '
		{ v[NR] = $1; s += $1 }
		END {
			if (NR == 0) { print "n=0"; exit }
			med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			p = int(0.9 * NR); if (p < 0.9 * NR) p++; if (p < 1) p = 1
			printf "n=%d mean=%.1f median=%.1f p90=%.1f min=%.1f max=%.1f\n", NR, s / NR, med, v[p], v[1], v[NR]
		}'
}

# field NAME: the value of NAME=VALUE in a stats line on stdin.
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

# ratio A B: A/B with 2 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.2f", a / b }'; }

# free_port VAR: set VAR to a random TCP port in 20000-39999 that nothing
# listens on (per ss) and that this script has not handed out before.
BENCH_PORTS=" "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		case "$BENCH_PORTS" in *" $p "*) continue ;; esac
		ss -ltnuH "sport = :$p" | grep -q . && continue
		BENCH_PORTS="$BENCH_PORTS$p "
		printf -v "$1" %s "$p"
		return
	done
}

# wait_http URL [SECONDS]: poll until URL answers (any HTTP status), or fail.
wait_http() {
	local url=$1 deadline=$((SECONDS + ${2:-20}))
	until curl -s -o /dev/null --noproxy '*' -k -m 2 "$url"; do
		[ $SECONDS -lt $deadline ] || { echo "timeout waiting for $url" >&2; return 1; }
		sleep 0.05
	done
}

# wait_port PORT [SECONDS]: poll until something listens on 127.0.0.1:PORT.
wait_port() {
	local port=$1 deadline=$((SECONDS + ${2:-20}))
	until ss -ltnH "sport = :$port" | grep -q .; do
		[ $SECONDS -lt $deadline ] || { echo "timeout waiting for port $port" >&2; return 1; }
		sleep 0.05
	done
}

# machine: one paragraph about where the figures were measured.
machine() {
	echo "host: $(uname -srm); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')); $(free -g | awk '/Mem:/ {print $2}') GiB"
	echo "go: $(go version 2>/dev/null | awk '{print $3}'); docker: $(docker version -f '{{.Server.Version}}' 2>/dev/null || echo none)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO_ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
}

# build_bin DIR: the static claude-bottle binary into DIR.
build_bin() {
	(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$1/claude-bottle" ./cmd/claude-bottle)
}

# Background daemons started by a script, ended (by pid) at exit.
BENCH_PIDS=""
# bg LOG CMD...: start CMD in the background, output to LOG.
bg() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	BENCH_PIDS="$BENCH_PIDS $!"
}
stop_bg() {
	local p
	for p in $BENCH_PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $BENCH_PIDS; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	BENCH_PIDS=""
}

# to_ms VALUE: wrk's "1.23ms" / "850.00us" / "1.02s" in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
		else { sub(/s$/, "", v); printf "%.3f", v * 1000 } }'
}

# wrk_summary FILE: one line from a `wrk --latency` output.
wrk_summary() {
	local f=$1 rps p50 p99 sock non2xx
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
	sock=$(awk '/Socket errors/ { s = 0; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$f")
	non2xx=$(awk '/Non-2xx/ {print $NF}' "$f")
	printf 'rps=%s p50_ms=%s p99_ms=%s socket_errors=%s non2xx=%s\n' "${rps:-0}" "$p50" "$p99" "${sock:-0}" "${non2xx:-0}"
}

# wait_quiet: this machine is shared; wait up to QUIET_WAIT seconds (default
# 300) for the 1-minute load average to fall below 1.0 and for the engine to
# run no container, then say what the figures were measured beside.
wait_quiet() {
	local deadline=$((SECONDS + ${QUIET_WAIT:-300})) load n
	while :; do
		load=$(cut -d' ' -f1 /proc/loadavg)
		n=$(docker ps -q 2>/dev/null | wc -l)
		if awk -v l="$load" 'BEGIN { exit !(l < 1.0) }' && [ "$n" = 0 ]; then
			echo "quiet: load $load, no other containers"
			return
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "NOT quiet after ${QUIET_WAIT:-300}s: load $load, $n other containers running (figures are noisier)"
			return
		fi
		sleep 5
	done
}
