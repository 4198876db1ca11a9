#!/usr/bin/env bash
# Launch benchmark: a warm `claude-bottle run AGENT -- true` with every sidecar
# (egress, cred-proxy, git-gate, supervise) against a bare
# `docker run --rm claude-bottle-agent:TAG true` (under the series' runtime when
# that is runsc or runc), interleaved in the same run.
#
#   bench/launch.sh [N]        N timed iterations of each (default 10)
#
# Env: RUNTIMES="auto runc" (the bottle's runtime setting; each is a series;
# "runsc runc" compares gVisor with runc), CLAUDE_BOTTLE_IMAGE_TAG,
# KEEP=1 keeps the temp dir. Needs a Docker engine; builds the images if
# missing (CLAUDE_BOTTLE_EXTRA_CA defaults to the host's CA bundle).
# Touches only containers and networks it creates (instances cbbench-*).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${1:-10}
RUNTIMES=${RUNTIMES:-auto runc}
export CLAUDE_BOTTLE_EXTRA_CA=${CLAUDE_BOTTLE_EXTRA_CA:-/etc/ssl/certs/ca-certificates.crt}

TMP=$(mktemp -d /tmp/cbbench-launch.XXXXXX)
export CLAUDE_BOTTLE_STATE_DIR="$TMP/state"
mkdir -p "$CLAUDE_BOTTLE_STATE_DIR"
PREFIX="cbbench-$$"
cleanup() {
	local ids
	ids=$(docker ps -aq --filter "name=^$PREFIX" 2>/dev/null || true)
	[ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
	for n in $(docker network ls -q --filter "name=^$PREFIX" 2>/dev/null); do docker network rm "$n" >/dev/null 2>&1 || true; done
	for v in $(docker volume ls -q --filter "name=^$PREFIX" 2>/dev/null); do docker volume rm -f "$v" >/dev/null 2>&1 || true; done
	[ "${KEEP:-}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

echo "== claude-bottle launch benchmark"
machine
echo "iterations: $N warm (after one untimed warm-up of each); runtimes: $RUNTIMES"
echo

build_bin "$TMP"
BIN="$TMP/claude-bottle"
(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$TMP/benchfix" ./bench/cmd/benchfix)

# A bottle with every sidecar. Nothing in it is ever contacted: the command is
# `true`, and the upstreams are under .test (reserved, never resolvable).
ssh-keygen -q -t ed25519 -N '' -C bench -f "$TMP/deploy-key"
ssh-keygen -q -t ed25519 -N '' -C bench -f "$TMP/host-key"
chmod 600 "$TMP/deploy-key"
manifest() {
	cat <<EOF
version: 1
agents:
  bench:
    bottle: full
bottles:
  full:
    runtime: $1
    supervise: true
    egress:
      allow:
        - host: registry.bench.test
    cred_proxy:
      routes:
        - name: api
          path: /api/
          upstream: https://api.bench.test
          role: anthropic-base-url
          credentials:
            - env: BENCH_FAKE_TOKEN
              header: x-api-key
              format: "{token}"
    git:
      repos:
        - name: app
          upstream: git@git.bench.test:srv/app.git
          key: $TMP/deploy-key
          host_keys:
            - git.bench.test $(cut -d' ' -f1-2 "$TMP/host-key.pub")
          push:
            branches: ["agent/*"]
EOF
}
export BENCH_FAKE_TOKEN=sk-bench-fake-token-0123456789abcdef

cd "$TMP"
manifest auto >claude-bottle.yaml
"$BIN" validate
t0=$(date +%s%N)
"$BIN" images build >"$TMP/images.log" 2>&1 || { tail -20 "$TMP/images.log"; exit 1; }
echo "images build (cached layers): $(( ($(date +%s%N) - t0) / 1000000 )) ms"
wait_quiet
echo

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

AGENT_IMAGE=claude-bottle-agent:${CLAUDE_BOTTLE_IMAGE_TAG:-local}
# bare RUNTIME I: one `docker run --rm` of the agent image; prints wall ms.
bare() {
	local t rt=()
	case $1 in runsc | runc) rt=(--runtime "$1") ;; esac
	t=$(date +%s%N)
	docker run --rm "${rt[@]}" --name "$PREFIX-bare-$2" "$AGENT_IMAGE" true
	ms_since "$t"
}

# floor KIND I: the engine work alone (benchfix launchfloor): "one" is a
# private network, one sidecar and the agent; "shape" is this bottle's shape
# (two networks, four sidecars, the agent). Prints wall ms.
floor() {
	local t args=(-sidecars 1)
	[ "$1" = shape ] && args=(-sidecars 4 -outside)
	t=$(date +%s%N)
	"$TMP/benchfix" launchfloor -prefix "$PREFIX-floor-$1-$2" "${args[@]}"
	ms_since "$t"
}

# bottle RUNTIME I: one claude-bottle run; prints "wall phase=ms ...".
bottle() {
	local t err inst="$PREFIX-$1-$2" rc=0
	err="$TMP/run-$1-$2.err"
	t=$(date +%s%N)
	CLAUDE_BOTTLE_CONTAINER=$inst CLAUDE_BOTTLE_TIMINGS=1 "$BIN" run bench -- true 2>"$err" || rc=$?
	local wall
	wall=$(ms_since "$t")
	if [ "$rc" != 0 ]; then
		echo "run $inst failed (exit $rc):" >&2
		cat "$err" >&2
		exit 1
	fi
	if [ -n "$(docker ps -aq --filter "label=dev.claude-bottle.instance=$inst")$(docker network ls -q --filter "label=dev.claude-bottle.instance=$inst")" ]; then
		echo "run $inst left containers or networks behind" >&2
		exit 1
	fi
	printf '%s' "$wall"
	sed -n 's/^claude-bottle: timing \([a-z]*\) \([0-9.]*\) ms$/ \1=\2/p' "$err" | tr -d '\n'
	echo
}

summary() { # FILE LABEL: stats of column "wall" and of each phase
	local f=$1
	printf '  %-10s %s\n' wall "$(cut -d' ' -f1 "$f" | stats)"
	for ph in images plan start agent teardown; do
		grep -q " $ph=" "$f" || continue
		printf '  %-10s %s\n' "$ph" "$(tr ' ' '\n' <"$f" | sed -n "s/^$ph=//p" | stats)"
	done
}

for rt in $RUNTIMES; do
	manifest "$rt" >claude-bottle.yaml
	echo "== runtime: $rt"
	# Warm-up: caches the runsc probe and the page cache; not timed.
	bare "$rt" warm >/dev/null
	bottle "$rt" warm >/dev/null
	floor one warm >/dev/null
	floor shape warm >/dev/null
	grep -v '^claude-bottle: timing' "$TMP/run-$rt-warm.err" | sed 's/^/  note: /' || true
	: >"$TMP/bare-$rt.txt"
	: >"$TMP/bottle-$rt.txt"
	: >"$TMP/floor1-$rt.txt"
	: >"$TMP/floorshape-$rt.txt"
	for i in $(seq "$N"); do
		bare "$rt" "$i" >>"$TMP/bare-$rt.txt"
		bottle "$rt" "$i" >>"$TMP/bottle-$rt.txt"
		floor one "$rt-$i" >>"$TMP/floor1-$rt.txt"
		floor shape "$rt-$i" >>"$TMP/floorshape-$rt.txt"
	done
	echo "bare docker run --rm $AGENT_IMAGE true (ms):"
	echo "  samples: $(tr '\n' ' ' <"$TMP/bare-$rt.txt")"
	printf '  %-10s %s\n' wall "$(stats <"$TMP/bare-$rt.txt")"
	echo "claude-bottle run bench -- true, all four sidecars (ms):"
	echo "  samples: $(cut -d' ' -f1 "$TMP/bottle-$rt.txt" | tr '\n' ' ')"
	summary "$TMP/bottle-$rt.txt"
	bm=$(stats <"$TMP/bare-$rt.txt" | field median)
	cm=$(cut -d' ' -f1 "$TMP/bottle-$rt.txt" | stats | field median)
	bmean=$(stats <"$TMP/bare-$rt.txt" | field mean)
	cmean=$(cut -d' ' -f1 "$TMP/bottle-$rt.txt" | stats | field mean)
	echo "ratio (claude-bottle / bare): median $(ratio "$cm" "$bm"), mean $(ratio "$cmean" "$bmean") (goal <= 1.5)"
	f1=$(stats <"$TMP/floor1-$rt.txt" | field median)
	fs=$(stats <"$TMP/floorshape-$rt.txt" | field median)
	echo "engine floor, nothing but the engine calls (benchfix launchfloor, runc, ms):"
	printf '  %-34s %s\n' "private network + 1 sidecar + agent" "$(stats <"$TMP/floor1-$rt.txt")"
	printf '  %-34s %s\n' "this shape: 2 networks, 4 sidecars" "$(stats <"$TMP/floorshape-$rt.txt")"
	echo "  floor / bare: one sidecar $(ratio "$f1" "$bm"), this shape $(ratio "$fs" "$bm"); claude-bottle / this shape's floor $(ratio "$cm" "$fs")"
	echo
done

# One more run with the engine's event stream, to see where "start" and
# "teardown" go: each line is ms since the run began.
rt=${RUNTIMES%% *}
manifest "$rt" >claude-bottle.yaml
echo "== engine events of one run (runtime $rt), ms since start"
since=$(date +%s.%N)
t0=$(date +%s%N)
line=$(bottle "$rt" events)
until=$(date +%s.%N)
echo "  timings: $line"
inst="$PREFIX-$rt-events"
docker events --since "$since" --until "$until" --format '{{.TimeNano}} {{.Type}} {{.Action}}|{{.Actor.Attributes.name}}|{{.Actor.Attributes.container}}' |
	awk -F'|' -v t0="$t0" -v inst="$inst" '
		{ na = split($1, a, " "); act = a[3]; for (i = 4; i <= na; i++) act = act " " a[i]
		  name = $2
		  if (index(name, inst) != 1) next
		  sub(inst "-?", "", name); if (name == "") name = "agent"
		  if (act ~ /^exec_(create|die)/) next
		  if (act ~ /^exec_start/) act = "exec (readiness check)"
		  printf "  %6.0f %-9s %-24s %s\n", (a[1] - t0) / 1e6, a[2], act, name }'
