#!/usr/bin/env bash
# What TLS costs at the gateway: the same tide binary twice, one gateway listener plain and one
# with server.tls (a P-256 certificate made here with the openssl CLI), both in front of the same
# upstream (nginx answering a fixed 200 "ok\n"), 2 gateway threads each.
# Load: wrk, 2 threads, 64 keep-alive connections, DURATION each (default 5s) after a 2 s warm-up,
# plain and TLS alternately, RUNS times (default 2). Prints requests/s and p50/p99 per row.
# Needs nginx (nginx-light), wrk and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
TIDE=${TIDE:-build/bin/tide}
D=${DURATION:-5s}
RUNS=${RUNS:-2}
for tool in nginx wrk openssl; do
  command -v $tool >/dev/null || { echo "bench: $tool is not installed"; exit 2; }
done
[ -x "$TIDE" ] || { echo "bench: $TIDE not built"; exit 2; }
dir=$(mktemp -d); mkdir -p $dir/up
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $dir/k.pem -out $dir/c.pem -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
UP=$(free_port); GP=$(free_port); GA=$(free_port); TP=$(free_port); TA=$(free_port)
cat > $dir/up/nginx.conf <<E
daemon off; pid $dir/up.pid; error_log stderr warn; events { worker_connections 4096; }
worker_processes 1;
http { access_log off; client_body_temp_path $dir/up; proxy_temp_path $dir/up; fastcgi_temp_path $dir/up; uwsgi_temp_path $dir/up; scgi_temp_path $dir/up; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
E
cfg() { cat <<E
server: {listen: 127.0.0.1:$1, api: 127.0.0.1:$2, threads: 2, max_connections: 10000 $3}
state: {path: ":memory:"}
endpoints:
  - name: chat
    groups:
      - name: upstream
        min_replicas: 1
        max_replicas: 1
        concurrency: 4096
        provisioner: {kind: static, urls: [http://127.0.0.1:$UP], ready: {path: /}}
        scaling: {policy: queue, queue_size: 1000000}
E
}
cfg $GP $GA "" > $dir/plain.yaml
cfg $TP $TA ", tls: {cert_file: $dir/c.pem, key_file: $dir/k.pem}" > $dir/tls.yaml
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf $dir' EXIT
nginx -p $dir/up -c $dir/up/nginx.conf & pids+=($!)
"$TIDE" serve --config $dir/plain.yaml 2>$dir/plain.log & pids+=($!)
"$TIDE" serve --config $dir/tls.yaml 2>$dir/tls.log & pids+=($!)
for u in "http://127.0.0.1:$GP/chat/" "https://127.0.0.1:$TP/chat/"; do
  for i in $(seq 200); do [ "$(curl -sk -o /dev/null -w '%{http_code}' $u || true)" = 200 ] && break; sleep 0.05; done
done
row() { # name url extra-args
  wrk -t2 -c64 -d2s $3 "$2" >/dev/null
  wrk -t2 -c64 -d$D --latency $3 "$2" > $dir/wrk.out
  awk -v n="$1" '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$0} END {printf "%-28s %10s req/s  p50 %8s  p99 %8s %s\n", n, rps, p50, p99, bad}' $dir/wrk.out
}
for _ in $(seq "$RUNS"); do
  row "plain" "http://127.0.0.1:$GP/chat/" ""
  row "tls" "https://127.0.0.1:$TP/chat/" ""
done
