#!/usr/bin/env bash
# gVisor cost: a launch (`claude-bottle run bench -- true`: egress,
# cred-proxy and supervise, so under runsc cred-proxy waits for egress) and the same in-bottle workload under `runtime: runsc` and
# `runtime: runc`, interleaved in one run. (bench/launch.sh with
# RUNTIMES="runsc runc" compares the four-sidecar launch, series by series.)
#
#   bench/gvisor.sh [N]        N timed iterations of each (default 5)
#
# The workload runs inside a real bottle (`claude-bottle run --cwd`, so a
# mirror of this repository is in /workspace): `git clone` of that local
# mirror, `git log -p` over the whole history, and a small build, Python's
# byte-compiler over a copy of its standard library (many small files: the
# syscalls gVisor intercepts). Each phase is timed inside the bottle.
# Needs a Docker engine with a working runsc (docs/gvisor.md). Not run by CI.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${1:-5}
export CLAUDE_BOTTLE_EXTRA_CA=${CLAUDE_BOTTLE_EXTRA_CA:-/etc/ssl/certs/ca-certificates.crt}
TMP=$(mktemp -d /tmp/cbbench-gvisor.XXXXXX)
export CLAUDE_BOTTLE_STATE_DIR="$TMP/state"
export CLAUDE_BOTTLE_DERIVED_IMAGE="claude-bottle:cwd-bench-gvisor-$$"
mkdir -p "$CLAUDE_BOTTLE_STATE_DIR"
PREFIX="cbbench-gv-$$"
cleanup() {
	local ids
	ids=$(docker ps -aq --filter "name=^$PREFIX" 2>/dev/null || true)
	[ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
	docker rmi "$CLAUDE_BOTTLE_DERIVED_IMAGE" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

echo "== gVisor workload benchmark"
machine
echo "iterations: $N warm of each runtime, interleaved (after one untimed warm-up of each)"
build_bin "$TMP"
BIN="$TMP/claude-bottle"
mkdir -p "$TMP/work"
git clone -q --mirror "$REPO_ROOT" "$TMP/work/mirror.git"
echo "mirror: $(du -sh "$TMP/work/mirror.git" | cut -f1), $(git -C "$TMP/work/mirror.git" rev-list --all | wc -l) commits"
cd "$TMP/work"
manifest() {
	cat <<EOF
version: 1
agents:
  bench:
    bottle: b
bottles:
  b:
    runtime: $1
    supervise: true
    cred_proxy:
      routes:
        - name: api
          path: /api/
          upstream: https://api.bench.test
          credentials:
            - env: BENCH_FAKE_TOKEN
              header: x-api-key
              format: "{token}"
EOF
}
export BENCH_FAKE_TOKEN=sk-bench-fake-token-0123456789abcdef
"$BIN" images build >"$TMP/images.log" 2>&1 || { tail -20 "$TMP/images.log"; exit 1; }
"$BIN" runtime | sed 's/^/  /'

# The workload: prints "clone=MS log=MS build=MS total=MS".
read -r -d '' WORK <<'SH' || true
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
set -e
t0=$(date +%s%N)
git clone -q /workspace/mirror.git /tmp/w
t1=$(date +%s%N)
git -C /tmp/w log -p --all >/dev/null
t2=$(date +%s%N)
cp -r /usr/lib/python3.11 /tmp/py
find /tmp/py -name __pycache__ -prune -exec rm -rf {} +
python3 -m compileall -q /tmp/py >/dev/null 2>&1 || true
t3=$(date +%s%N)
echo "clone=$(( (t1 - t0) / 1000000 )) log=$(( (t2 - t1) / 1000000 )) build=$(( (t3 - t2) / 1000000 )) total=$(ms $t0)"
SH

one() { # RUNTIME I
	manifest "$1" >claude-bottle.yaml
	local t out
	t=$(date +%s%N)
	out=$(CLAUDE_BOTTLE_CONTAINER="$PREFIX-$1-$2" "$BIN" run --cwd bench -- sh -c "$WORK" 2>"$TMP/err-$1-$2") ||
		{ cat "$TMP/err-$1-$2" >&2; exit 1; }
	echo "$out wall=$(( ($(date +%s%N) - t) / 1000000 ))"
}

launch() { # RUNTIME I: prints "launch=MS"
	manifest "$1" >claude-bottle.yaml
	local t
	t=$(date +%s%N)
	CLAUDE_BOTTLE_CONTAINER="$PREFIX-l$1-$2" "$BIN" run bench -- true 2>"$TMP/lerr-$1-$2" ||
		{ cat "$TMP/lerr-$1-$2" >&2; exit 1; }
	echo "launch=$(( ($(date +%s%N) - t) / 1000000 ))"
}

for rt in runsc runc; do one "$rt" warm >/dev/null; launch "$rt" warm >/dev/null; done
wait_quiet
for i in $(seq "$N"); do
	for rt in runsc runc; do
		launch "$rt" "$i" >>"$TMP/$rt.txt"
		one "$rt" "$i" >>"$TMP/$rt.txt"
	done
done
echo "launch = claude-bottle run bench -- true (egress, cred-proxy, supervise); the workload's"
echo "phases are timed inside the bottle; wall = the whole run --cwd with the workload"
for rt in runsc runc; do
	echo "runtime $rt (ms):"
	for ph in launch clone log build total wall; do
		printf '  %-6s %s\n' "$ph" "$(tr ' ' '\n' <"$TMP/$rt.txt" | sed -n "s/^$ph=//p" | stats)"
	done
done
echo "ratios runsc / runc (medians):"
for ph in launch clone log build total wall; do
	a=$(tr ' ' '\n' <"$TMP/runsc.txt" | sed -n "s/^$ph=//p" | stats | field median)
	b=$(tr ' ' '\n' <"$TMP/runc.txt" | sed -n "s/^$ph=//p" | stats | field median)
	printf '  %-6s %s\n' "$ph" "$(ratio "$a" "$b")"
done
