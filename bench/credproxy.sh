#!/usr/bin/env bash
# cred-proxy benchmark, on the host (no Docker): claude-bottle's cred-proxy
# against nginx configured as the same reverse proxy (inject a header, strip
# the agent's, stream without buffering), in the same run.
#
#   bench/credproxy.sh
#
# 1. Throughput: wrk (keep-alive) GETs a 1 KiB file from an upstream nginx
#    directly, through cred-proxy, and through the nginx reverse proxy. A
#    fourth line is the path in a bottle: cred-proxy reaching an https
#    upstream through CONNECT tunnels of the egress proxy.
# 2. Time to the first SSE event: a Go upstream (bench/cmd/benchfix sse)
#    sends its first event at once; bench/cmd/benchfix ttfe measures the time
#    from sending the request to reading that event, directly, through
#    cred-proxy and through nginx (proxy_buffering off), interleaved, on a
#    kept-alive connection and on a new connection per request.
#
# Env: DURATION (wrk seconds, default 10), REPS (3), CONNS (64), SAMPLES (200),
# KEEP=1 keeps the temp dir,
# CLAUDE_BOTTLE_BIN=PATH measures that binary instead of building one.
# Runs in a private network namespace (loopback
# only); the upstreams are `localhost` (from /etc/hosts), 127.0.0.1, and for
# the egress path `bench.test`, answered 127.0.0.1 by a stub DNS on
# 127.0.0.1:53 named in a bind-mounted /etc/resolv.conf (that namespace only).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10}
REPS=${REPS:-3}
CONNS=${CONNS:-64}
SAMPLES=${SAMPLES:-200}
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY ALL_PROXY all_proxy

if [ "${BENCH_IN_NS:-}" != 1 ]; then
	TMP=$(mktemp -d /tmp/cbbench-credproxy.XXXXXX)
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

echo "== cred-proxy benchmark"
machine
wait_quiet
echo "wrk: -t2 -c$CONNS -d${DURATION}s keep-alive, $REPS runs each (the median is the figure); SSE: $SAMPLES samples"
echo "network: a private namespace with only loopback"
echo

BIN="$TMP/claude-bottle"
if ! "$BIN" sidecar cred-proxy --help 2>&1 | grep -q -- '--listen'; then
	echo "this claude-bottle has no 'sidecar cred-proxy --listen' flag: it would listen on :8080" >&2
	exit 1
fi

free_port P_UP
free_port P_SSE
free_port P_CP
free_port P_NG
free_port P_UPS
free_port P_SSES
free_port P_EG
free_port P_CPE
free_port P_FL
TOKEN=sk-bench-real-token-0123456789abcdef

# --- upstreams: nginx (1 worker) with a 1 KiB file, and the SSE fixture
mkdir -p "$TMP/www" "$TMP/up" "$TMP/ng"
head -c 1024 /dev/zero | tr '\0' x >"$TMP/www/small"
chmod 644 "$TMP/www/small"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=$NAME" -addext "subjectAltName=DNS:$NAME" \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
chmod 644 "$TMP/key.pem" "$TMP/cert.pem"
bg "$TMP/dns.log" "$TMP/benchfix" dns -listen 127.0.0.1:53 -name "$NAME" -addr 127.0.0.1
nginx_common() { # DIR
	cat <<EOF
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() { # DIR
	cat <<EOF
	access_log off;
	client_body_temp_path $1/body;
	proxy_temp_path $1/proxy;
	fastcgi_temp_path $1/fastcgi;
	uwsgi_temp_path $1/uwsgi;
	scgi_temp_path $1/scgi;
	keepalive_requests 1000000;
EOF
}
{
	echo "worker_processes 1;"
	nginx_common "$TMP/up"
	echo "http {"
	nginx_http_common "$TMP/up"
	cat <<EOF
	server {
		listen 127.0.0.1:$P_UP;
		listen 127.0.0.1:$P_UPS ssl;
		ssl_certificate $TMP/cert.pem;
		ssl_certificate_key $TMP/key.pem;
		root $TMP/www;
		location = /nginx_status { stub_status; }
	}
}
EOF
} >"$TMP/up/nginx.conf"
bg "$TMP/up/stdout.log" nginx -e "$TMP/up/error.log" -c "$TMP/up/nginx.conf" -g 'daemon off;'
bg "$TMP/sse.log" "$TMP/benchfix" sse -listen "127.0.0.1:$P_SSE" -require-header x-api-key
bg "$TMP/sses.log" "$TMP/benchfix" sse -listen "127.0.0.1:$P_SSES" -require-header x-api-key -tls-cert "$TMP/cert.pem" -tls-key "$TMP/key.pem"

# --- cred-proxy: two routes, the token injected as x-api-key
mkdir -p "$TMP/cp/config/tokens" "$TMP/cp/log"
printf '%s\n' "$TOKEN" >"$TMP/cp/config/tokens/api"
chmod 400 "$TMP/cp/config/tokens/api"
cat >"$TMP/cp/config/routes.json" <<EOF
{"routes": [
  {"name": "api", "path": "/api/", "upstream": "http://localhost:$P_UP", "header": "x-api-key", "format": "{token}", "strip_headers": [], "token_file": "tokens/api"},
  {"name": "sse", "path": "/sse/", "upstream": "http://localhost:$P_SSE", "header": "x-api-key", "format": "{token}", "strip_headers": [], "token_file": "tokens/api"}
]}
EOF
bg "$TMP/cp/stderr.log" "$BIN" sidecar cred-proxy --config "$TMP/cp/config" --log "$TMP/cp/log" \
	--instance bench --listen "127.0.0.1:$P_CP"

# --- the floor: a bare httputil.ReverseProxy with Rewrite and the same
# pooled transport, setting the same header; no route table, path checks,
# scrubbing or log. What the mandated library costs on this machine.
bg "$TMP/floor.log" "$TMP/benchfix" floor -listen "127.0.0.1:$P_FL" -upstream "http://localhost:$P_UP" -header x-api-key -value "$TOKEN"

# --- the path in a bottle: a second cred-proxy whose https upstreams are
# reached through the egress proxy (HTTPS_PROXY), as in a bottle
mkdir -p "$TMP/eg/config" "$TMP/eg/log" "$TMP/cpe/config/tokens" "$TMP/cpe/log"
cat >"$TMP/eg/config/policy.json" <<EOF
{"rules": [{"host": "$NAME", "port": $P_UPS, "allow_private": true, "source": "route api"},
           {"host": "$NAME", "port": $P_SSES, "allow_private": true, "source": "route sse"}]}
EOF
echo "{\"values\": [\"$TOKEN\"]}" >"$TMP/eg/config/secrets.json"
bg "$TMP/eg/stderr.log" "$BIN" sidecar egress --config "$TMP/eg/config" --log "$TMP/eg/log" \
	--instance bench --listen "127.0.0.1:$P_EG" --dns-listen -
cp "$TMP/cp/config/tokens/api" "$TMP/cpe/config/tokens/api"
cat >"$TMP/cpe/config/routes.json" <<EOF
{"routes": [
  {"name": "api", "path": "/api/", "upstream": "https://$NAME:$P_UPS", "header": "x-api-key", "format": "{token}", "strip_headers": [], "token_file": "tokens/api"},
  {"name": "sse", "path": "/sse/", "upstream": "https://$NAME:$P_SSES", "header": "x-api-key", "format": "{token}", "strip_headers": [], "token_file": "tokens/api"}
]}
EOF
bg "$TMP/cpe/stderr.log" env HTTPS_PROXY="http://127.0.0.1:$P_EG" SSL_CERT_FILE="$TMP/cert.pem" \
	"$BIN" sidecar cred-proxy --config "$TMP/cpe/config" --log "$TMP/cpe/log" --instance bench --listen "127.0.0.1:$P_CPE"

# --- nginx as the same reverse proxy (2 workers, one per core; pooled
# upstream connections; no buffering, so SSE streams through)
{
	echo "worker_processes auto;"
	nginx_common "$TMP/ng"
	echo "http {"
	nginx_http_common "$TMP/ng"
	cat <<EOF
	upstream api { server 127.0.0.1:$P_UP; keepalive 64; }
	upstream sse { server 127.0.0.1:$P_SSE; keepalive 64; }
	server {
		listen 127.0.0.1:$P_NG;
		proxy_http_version 1.1;
		proxy_buffering off;
		proxy_set_header Connection "";
		proxy_set_header Authorization "";
		proxy_set_header Cookie "";
		proxy_set_header x-api-key "$TOKEN";
		location /api/ { proxy_pass http://api/; }
		location /sse/ { proxy_pass http://sse/; }
	}
}
EOF
} >"$TMP/ng/nginx.conf"
bg "$TMP/ng/stdout.log" nginx -e "$TMP/ng/error.log" -c "$TMP/ng/nginx.conf" -g 'daemon off;'

for p in $P_UP $P_UPS $P_SSE $P_SSES $P_CP $P_NG $P_EG $P_CPE $P_FL; do wait_port "$p"; done
echo "ports: upstream nginx $P_UP (https $P_UPS), sse $P_SSE (https $P_SSES); cred-proxy $P_CP; nginx proxy $P_NG; egress $P_EG, cred-proxy via egress $P_CPE; bare ReverseProxy $P_FL"

# Sanity: both proxies serve the file and the SSE stream (the SSE fixture
# answers 401 unless x-api-key arrives).
for u in "http://127.0.0.1:$P_CP" "http://127.0.0.1:$P_NG" "http://127.0.0.1:$P_CPE"; do
	curl -sf -o "$TMP/check" "$u/api/small" && cmp -s "$TMP/check" "$TMP/www/small" || { echo "$u/api/small failed" >&2; exit 1; }
	curl -sf -X POST "$u/sse/v1/messages" | grep -q '^data:' || { echo "$u/sse/v1/messages failed" >&2; exit 1; }
done
echo

# accepts: connections the upstream nginx has accepted so far.
accepts() { curl -s "http://127.0.0.1:$P_UP/nginx_status" | awk 'NR == 3 {print $1}'; }

# thr_once NAME URL I: one wrk run, and how many connections the upstream
# nginx accepted during it.
thr_once() {
	local name=$1 url=$2 i=$3 a0 a1
	a0=$(accepts)
	wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$TMP/wrk-$name-$i.txt"
	a1=$(accepts)
	wrk_summary "$TMP/wrk-$name-$i.txt" >"$TMP/sum-$name-$i.txt"
	echo $((a1 - a0 - 1)) >"$TMP/acc-$name-$i.txt"
}
# thr_report NAME: the median req/s of its runs, each run, connections.
thr_report() {
	local name=$1 i med conns reqs
	med=$(sed 's/^rps=\([^ ]*\).*/\1/' "$TMP"/sum-"$name"-*.txt | stats | field median)
	printf '  %-10s req/s median %8.0f   runs: %s\n' "$name" "$med" "$(sed 's/^rps=\([0-9]*\).*/\1/' "$TMP"/sum-"$name"-*.txt | tr '\n' ' ')"
	for i in $(seq "$REPS"); do printf '  %-10s   run %d: %s\n' "" "$i" "$(cat "$TMP/sum-$name-$i.txt")"; done
	conns=$(cat "$TMP"/acc-"$name"-*.txt | awk '{s += $1} END {print s}')
	reqs=$(cat "$TMP"/wrk-"$name"-*.txt | awk '/requests in/ {s += $1} END {print s}')
	printf '  %-10s   upstream connections opened: %d for %d requests\n' "" "$conns" "$reqs"
	echo "$med" >"$TMP/med-$name"
}
echo "== throughput: GET 1 KiB through the reverse proxy, keep-alive (interleaved runs)"
declare -A URL=([direct]="http://127.0.0.1:$P_UP/small" [cred-proxy]="http://127.0.0.1:$P_CP/api/small"
	[nginx]="http://127.0.0.1:$P_NG/api/small" [cp-egress]="http://127.0.0.1:$P_CPE/api/small" [floor]="http://127.0.0.1:$P_FL/small")
PEERS="direct cred-proxy nginx cp-egress floor"
# Every peer once, then again: a drift of the machine's speed during the
# run affects every peer alike.
for i in $(seq "$REPS"); do
	for name in $PEERS; do thr_once "$name" "${URL[$name]}" "$i"; done
done
for name in $PEERS; do thr_report "$name"; done
echo "  cred-proxy/nginx $(ratio "$(cat "$TMP/med-cred-proxy")" "$(cat "$TMP/med-nginx")") (goal >= 1.0), cred-proxy/direct $(ratio "$(cat "$TMP/med-cred-proxy")" "$(cat "$TMP/med-direct")"), nginx/direct $(ratio "$(cat "$TMP/med-nginx")" "$(cat "$TMP/med-direct")")"
echo "  floor (a bare httputil.ReverseProxy, no checks, no log): floor/nginx $(ratio "$(cat "$TMP/med-floor")" "$(cat "$TMP/med-nginx")"), cred-proxy/floor $(ratio "$(cat "$TMP/med-cred-proxy")" "$(cat "$TMP/med-floor")")"
echo "  (cp-egress: cred-proxy -> egress CONNECT -> https upstream, the path in a bottle; not part of the goal)"
echo "  cred-proxy decision log: $(grep -c '"verdict":"allow"' "$TMP/cp/log/cred-proxy.jsonl" || true) allow lines, $(grep -vc '"verdict":"allow"' "$TMP/cp/log/cred-proxy.jsonl" || true) other lines"
echo

echo "== time to first SSE event (goal: cred-proxy adds < 5 ms)"
urls=("direct=http://127.0.0.1:$P_SSE/v1/messages" "cred-proxy=http://127.0.0.1:$P_CP/sse/v1/messages" "nginx=http://127.0.0.1:$P_NG/sse/v1/messages" "cp-egress=http://127.0.0.1:$P_CPE/sse/v1/messages")
"$TMP/benchfix" ttfe -n "$SAMPLES" -header "x-api-key: placeholder" "${urls[@]}"
"$TMP/benchfix" ttfe -n "$SAMPLES" -header "x-api-key: placeholder" -cold "${urls[@]}"
echo "  (cp-egress's upstream is https through egress; direct, cred-proxy and nginx reach a plain-http upstream)"
