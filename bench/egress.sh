#!/usr/bin/env bash
# Egress proxy benchmark, on the host (no Docker): claude-bottle's egress
# sidecar against squid and tinyproxy, all three on loopback in the same run.
#
#   bench/egress.sh
#
# 1. Small requests: wrk sends absolute-form `GET http://bench.test:PORT/small`
#    (1 KiB, served by nginx; PORT on 127.0.0.1, named bench.test) through each proxy, with `Connection: close`
#    (one request per connection) and with keep-alive.
# 2. Bulk: curl downloads a 2 GiB file over TLS (nginx) with CONNECT through
#    each proxy, and directly.
#
# Env: DURATION (wrk seconds, default 10), REPS (default 3), CONNS (64),
# BULK_GIB (2), MODES ("close keepalive"), KEEP=1 keeps the temp dir,
# CLAUDE_BOTTLE_BIN=PATH measures that binary instead of building one.
# Runs in a private network namespace: only loopback, nothing leaves.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10}
REPS=${REPS:-3}
CONNS=${CONNS:-64}
BULK_GIB=${BULK_GIB:-2}
MODES=${MODES:-close keepalive}
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY ALL_PROXY all_proxy

# Build outside, then run the rest in a new network and mount namespace: only
# a loopback interface exists there, and /etc/resolv.conf (bind-mounted over,
# in that namespace only) names a stub on 127.0.0.1 that answers bench.test
# with 127.0.0.1. The proxies resolve the upstream's name as they would in
# a bottle, and no query or packet can leave the machine.
if [ "${BENCH_IN_NS:-}" != 1 ]; then
	TMP=$(mktemp -d /tmp/cbbench-egress.XXXXXX)
	chmod 755 "$TMP"
	trap 'rm -rf "$TMP"' EXIT
	if [ -n "${CLAUDE_BOTTLE_BIN:-}" ]; then cp "$CLAUDE_BOTTLE_BIN" "$TMP/claude-bottle"; else build_bin "$TMP"; fi
	(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$TMP/benchfix" ./bench/cmd/benchfix)
	trap - EXIT
	exec unshare --net --mount --propagation private -- env BENCH_IN_NS=1 BENCH_TMP="$TMP" bash "$0" "$@"
fi
TMP=$BENCH_TMP
cleanup() {
	stop_bg
	[ "${KEEP:-}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
ip link set lo up
echo "nameserver 127.0.0.1" >"$TMP/resolv.conf"
chmod 644 "$TMP/resolv.conf"
mount --bind "$TMP/resolv.conf" /etc/resolv.conf
NAME=bench.test

echo "== egress proxy benchmark"
machine
wait_quiet
echo "wrk: -t2 -c$CONNS -d${DURATION}s, $REPS runs each (the median is the figure); bulk: ${BULK_GIB} GiB over TLS, $REPS runs each"
echo "network: a private namespace with only loopback; upstream name $NAME -> 127.0.0.1 (stub DNS on 127.0.0.1:53)"
echo

BIN="$TMP/claude-bottle"
if ! "$BIN" sidecar egress --help 2>&1 | grep -q -- '--listen'; then
	echo "this claude-bottle has no 'sidecar egress --listen' flag: it would listen on :3128 and :53" >&2
	exit 1
fi
bg "$TMP/dns.log" "$TMP/benchfix" dns -listen 127.0.0.1:53 -name "$NAME" -addr 127.0.0.1

free_port P_SMALL
free_port P_TLS
free_port P_EGRESS
free_port P_SQUID
free_port P_TINY
free_port P_FLOOR

# --- upstream: nginx, a 1 KiB file over HTTP and a sparse file over TLS
mkdir -p "$TMP/www" "$TMP/nginx"
head -c 1024 /dev/zero | tr '\0' x >"$TMP/www/small"
truncate -s "${BULK_GIB}G" "$TMP/www/big"
chmod 644 "$TMP/www/"*
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=$NAME" -addext "subjectAltName=DNS:$NAME" \
	-keyout "$TMP/nginx/key.pem" -out "$TMP/nginx/cert.pem" 2>/dev/null
chmod 644 "$TMP/nginx/"*.pem
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $TMP/nginx/body;
	proxy_temp_path $TMP/nginx/proxy;
	fastcgi_temp_path $TMP/nginx/fastcgi;
	uwsgi_temp_path $TMP/nginx/uwsgi;
	scgi_temp_path $TMP/nginx/scgi;
	keepalive_requests 1000000;
	sendfile on;
	server {
		listen 127.0.0.1:$P_SMALL;
		root $TMP/www;
	}
	server {
		listen 127.0.0.1:$P_TLS ssl;
		ssl_certificate $TMP/nginx/cert.pem;
		ssl_certificate_key $TMP/nginx/key.pem;
		root $TMP/www;
	}
}
EOF
bg "$TMP/nginx/stdout.log" nginx -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -g 'daemon off;'

# --- claude-bottle egress, allowing bench.test (a loopback address) on the two upstream ports
mkdir -p "$TMP/egress/config" "$TMP/egress/log"
cat >"$TMP/egress/config/policy.json" <<EOF
{"rules": [{"host": "$NAME", "port": $P_SMALL, "allow_private": true, "source": "bench"},
           {"host": "$NAME", "port": $P_TLS, "allow_private": true, "source": "bench"}]}
EOF
echo '{"values": ["sk-bench-canary-0123456789abcdef"]}' >"$TMP/egress/config/secrets.json"
bg "$TMP/egress/stderr.log" "$BIN" sidecar egress --config "$TMP/egress/config" --log "$TMP/egress/log" \
	--instance bench --listen "127.0.0.1:$P_EGRESS" --dns-listen -

# --- squid: allow loopback clients, no cache, log every request like ours
mkdir -p "$TMP/squid"
chown proxy: "$TMP/squid" 2>/dev/null || chmod 777 "$TMP/squid"
cat >"$TMP/squid/squid.conf" <<EOF
http_port 127.0.0.1:$P_SQUID
acl loopback src 127.0.0.0/8
http_access allow loopback
http_access deny all
cache deny all
cache_mem 8 MB
access_log stdio:$TMP/squid/access.log
cache_log $TMP/squid/cache.log
cache_store_log none
pid_filename $TMP/squid/squid.pid
coredump_dir $TMP/squid
cache_effective_user proxy
dns_nameservers 127.0.0.1
hosts_file /etc/hosts
via off
forwarded_for delete
shutdown_lifetime 0 seconds
EOF
bg "$TMP/squid/stdout.log" squid -N -f "$TMP/squid/squid.conf"

# --- tinyproxy
mkdir -p "$TMP/tinyproxy"
chown nobody: "$TMP/tinyproxy" 2>/dev/null || chmod 777 "$TMP/tinyproxy"
cat >"$TMP/tinyproxy/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $P_TINY
Listen 127.0.0.1
Timeout 600
LogFile "$TMP/tinyproxy/tinyproxy.log"
LogLevel Connect
MaxClients 1000
Allow 127.0.0.1
ConnectPort $P_TLS
DisableViaHeader Yes
EOF
bg "$TMP/tinyproxy/stdout.log" tinyproxy -d -c "$TMP/tinyproxy/tinyproxy.conf"

# --- the floor: a bare Go forward proxy (benchfix floor): ReverseProxy with
# pooled upstream connections for plain HTTP, io.Copy between the raw TCP
# connections for CONNECT; no policy, DNS checks, canary or log. What any
# relay built on the standard library costs on this machine.
bg "$TMP/floor.log" "$TMP/benchfix" floor -listen "127.0.0.1:$P_FLOOR"

for p in $P_SMALL $P_TLS $P_EGRESS $P_SQUID $P_TINY $P_FLOOR; do wait_port "$p"; done

# Sanity: every proxy answers 200 with the file, for small and over TLS.
declare -A PROXY=([egress]=$P_EGRESS [squid]=$P_SQUID [tinyproxy]=$P_TINY [floor]=$P_FLOOR)
for name in egress squid tinyproxy floor; do
	code=$(curl -s -o "$TMP/check" -w '%{http_code}' -x "http://127.0.0.1:${PROXY[$name]}" "http://$NAME:$P_SMALL/small")
	[ "$code" = 200 ] && cmp -s "$TMP/check" "$TMP/www/small" || { echo "$name: small request answered $code" >&2; exit 1; }
	code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/nginx/cert.pem" -r 0-99 -x "http://127.0.0.1:${PROXY[$name]}" "https://$NAME:$P_TLS/big")
	[ "$code" = 206 ] || { echo "$name: TLS range request answered $code" >&2; exit 1; }
done
echo "ports: nginx http $P_SMALL, https $P_TLS; egress $P_EGRESS; squid $P_SQUID; tinyproxy $P_TINY; floor $P_FLOOR"
echo

# --- small requests
# small_once MODE NAME I: one wrk run; MODE close|keepalive.
small_once() {
	local mode=$1 name=$2 i=$3 url env=()
	env=(BENCH_TARGET="$NAME:$P_SMALL")
	[ "$mode" = close ] && env+=(BENCH_CLOSE=1)
	if [ "$name" = direct ]; then
		url="http://127.0.0.1:$P_SMALL"
		env+=(BENCH_ORIGIN=1)
	else
		url="http://127.0.0.1:${PROXY[$name]}"
	fi
	env "${env[@]}" wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$BENCH_DIR/proxy.lua" "$url" >"$TMP/wrk-$mode-$name-$i.txt"
	wrk_summary "$TMP/wrk-$mode-$name-$i.txt" >"$TMP/sum-$mode-$name-$i.txt"
}
# small_report MODE NAME: the median of its runs, and each run.
small_report() {
	local mode=$1 name=$2 i med
	med=$(cat "$TMP"/sum-"$mode"-"$name"-*.txt | sed 's/^rps=\([^ ]*\).*/\1/' | stats | field median)
	printf '  %-10s req/s median %8.0f   runs: %s\n' "$name" "$med" "$(sed 's/^rps=\([0-9]*\).*/\1/' "$TMP"/sum-"$mode"-"$name"-*.txt | tr '\n' ' ')"
	for i in $(seq "$REPS"); do printf '  %-10s   run %d: %s\n' "" "$i" "$(cat "$TMP/sum-$mode-$name-$i.txt")"; done
	echo "$med" >"$TMP/med-$mode-$name"
}

PEERS="direct egress squid tinyproxy floor"
for mode in $MODES; do
	if [ "$mode" = close ]; then
		echo "== small requests (1 KiB), Connection: close: one request per client connection"
	else
		echo "== small requests (1 KiB), keep-alive"
	fi
	# Interleaved (every peer once, then again), so a drift of the
	# machine's speed during the run affects every peer alike.
	for i in $(seq "$REPS"); do
		for name in $PEERS; do small_once "$mode" "$name" "$i"; done
	done
	for name in $PEERS; do small_report "$mode" "$name"; done
	e=$(cat "$TMP/med-$mode-egress") s=$(cat "$TMP/med-$mode-squid") t=$(cat "$TMP/med-$mode-tinyproxy") d=$(cat "$TMP/med-$mode-direct") f=$(cat "$TMP/med-$mode-floor")
	echo "  egress/squid $(ratio "$e" "$s") (goal >= 1.5), egress/tinyproxy $(ratio "$e" "$t"), egress/direct $(ratio "$e" "$d")"
	echo "  floor (bare Go proxy, no checks, no log)/squid $(ratio "$f" "$s"), egress/floor $(ratio "$e" "$f")"
	echo
done

allowed=$(grep -c '"verdict":"allow"' "$TMP/egress/log/egress.jsonl" || true)
other=$(grep -vc '"verdict":"allow"' "$TMP/egress/log/egress.jsonl" || true)
echo "egress decision log: $allowed allow lines, $other other lines"
echo

# --- bulk over TLS through CONNECT
# bulk_once NAME: one download; appends its MB/s (10^6 bytes) to bulk-NAME.
bulk_once() {
	local name=$1 args=() out
	args=(--resolve "$NAME:$P_TLS:127.0.0.1")
	[ "$name" = direct ] || args=(-x "http://127.0.0.1:${PROXY[$name]}")
	out=$(curl -s -o /dev/null --cacert "$TMP/nginx/cert.pem" "${args[@]}" -w '%{http_code} %{size_download} %{speed_download}' "https://$NAME:$P_TLS/big")
	set -- $out
	[ "$1" = 200 ] && [ "$2" = $((BULK_GIB * 1073741824)) ] || { echo "$name: bulk answered $out" >&2; exit 1; }
	awk -v b="$3" 'BEGIN { printf "%.0f\n", b / 1e6 }' >>"$TMP/bulk-$name"
}
echo "== bulk: ${BULK_GIB} GiB over TLS (curl -> [proxy CONNECT] -> nginx https), interleaved"
# One untimed direct download first: the first read of the big file ran at
# half speed in every run (page cache), which penalised whoever came first.
bulk_once direct
for name in $PEERS; do : >"$TMP/bulk-$name"; done
for i in $(seq "$REPS"); do
	for name in $PEERS; do bulk_once "$name"; done
done
for name in $PEERS; do
	med=$(stats <"$TMP/bulk-$name" | field median)
	printf '  %-10s MB/s median %6.0f   runs: %s\n' "$name" "$med" "$(tr '\n' ' ' <"$TMP/bulk-$name")"
	echo "$med" >"$TMP/bulkmed-$name"
done
d=$(cat "$TMP/bulkmed-direct")
echo "  floor/direct $(ratio "$(cat "$TMP/bulkmed-floor")" "$d") (a bare io.Copy relay: what one more hop costs here)"
echo "  egress/direct $(ratio "$(cat "$TMP/bulkmed-egress")" "$d") (goal >= 0.9), squid/direct $(ratio "$(cat "$TMP/bulkmed-squid")" "$d"), tinyproxy/direct $(ratio "$(cat "$TMP/bulkmed-tinyproxy")" "$d")"
tunnels=$(grep -c '"kind":"connect".*"verdict":"allow"' "$TMP/egress/log/egress.jsonl" || true)
echo "  egress logged $tunnels allowed tunnels"
