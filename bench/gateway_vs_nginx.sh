#!/usr/bin/env bash
# The gateway against nginx as a reverse proxy, same upstream, same run:
#   upstream  nginx answering a fixed 200 ("ok\n") on 127.0.0.1, one worker
#   nginx     proxy_pass to it with upstream keep-alive (a well-configured nginx proxy)
#   tide      `tide serve` with a static provisioner pointing at the same upstream
# Load: wrk, 64 connections, DURATION each (default 10s), after a short warm-up.
# Both proxies get the same number of workers, WORKERS (default: one per core, what nginx's
# worker_processes auto and tide's server.threads: 0 choose).
# RUNS (default 1) repeats the measurement, nginx and tide alternately, a row per run.
# TIDE_BEFORE=path/to/another/tide adds that binary as a third proxy in the same runs (an A/B of a
# change against the same nginx, upstream and machine state).
# Prints requests/s and latency percentiles of each side by side; exits non-zero if tide serves
# fewer requests/s than nginx or its p99 is worse (medians over the runs), unless BENCH_NO_FAIL=1.
# Needs nginx (Debian nginx-light) and wrk: `apt-get install nginx-light wrk`.
set -euo pipefail
cd "$(dirname "$0")/.."
TIDE=${TIDE:-build/bin/tide}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${WRK_THREADS:-2}
WORKERS=${WORKERS:-$(nproc)}
RUNS=${RUNS:-1}
TIDE_BEFORE=${TIDE_BEFORE:-}
for tool in nginx wrk; do
  command -v $tool >/dev/null || { echo "bench: $tool is not installed (apt-get install nginx-light wrk)"; exit 2; }
done
[ -x "$TIDE" ] || { echo "bench: $TIDE not built"; exit 2; }
[ -z "$TIDE_BEFORE" ] || [ -x "$TIDE_BEFORE" ] || { echo "bench: $TIDE_BEFORE not found"; exit 2; }

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
  echo $((20000 + RANDOM % 20000)); }
UP=$(free_port); PROXY=$(free_port); GW=$(free_port); API=$(free_port)
GW2=$(free_port); API2=$(free_port)

common="daemon off; pid $dir/PIDFILE; error_log stderr warn;
events { worker_connections 4096; }"
mkdir -p "$dir/up" "$dir/proxy"
cat >"$dir/up/nginx.conf" <<EOF
${common//PIDFILE/up.pid}
worker_processes 1;
http {
  access_log off;
  client_body_temp_path $dir/up; proxy_temp_path $dir/up; fastcgi_temp_path $dir/up;
  uwsgi_temp_path $dir/up; scgi_temp_path $dir/up;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } }
}
EOF
cat >"$dir/proxy/nginx.conf" <<EOF
${common//PIDFILE/proxy.pid}
worker_processes $WORKERS;
http {
  access_log off;
  client_body_temp_path $dir/proxy; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/proxy;
  uwsgi_temp_path $dir/proxy; scgi_temp_path $dir/proxy;
  keepalive_requests 1000000;
  upstream model { server 127.0.0.1:$UP; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$PROXY;
    location /chat/ {
      proxy_pass http://model/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
tide_config() {  # gateway port, api port
cat <<EOF
server: {listen: 127.0.0.1:$1, api: 127.0.0.1:$2, threads: $WORKERS}
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
EOF
}
tide_config "$GW" "$API" >"$dir/tide.yaml"
tide_config "$GW2" "$API2" >"$dir/tide2.yaml"

nginx -p "$dir/up" -c "$dir/up/nginx.conf" & pids+=($!)
nginx -p "$dir/proxy" -c "$dir/proxy/nginx.conf" & pids+=($!)
"$TIDE" serve --config "$dir/tide.yaml" 2>"$dir/tide.log" & pids+=($!)
[ -z "$TIDE_BEFORE" ] || { "$TIDE_BEFORE" serve --config "$dir/tide2.yaml" 2>"$dir/tide2.log" & pids+=($!); }

wait_for() {  # url
  for _ in $(seq 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.05
  done
  echo "bench: $1 never answered 200"; cat "$dir/tide.log"; exit 1
}
wait_for "http://127.0.0.1:$UP/"
wait_for "http://127.0.0.1:$PROXY/chat/"
wait_for "http://127.0.0.1:$GW/chat/"
[ -z "$TIDE_BEFORE" ] || wait_for "http://127.0.0.1:$GW2/chat/"

# wrk's latency report, in microseconds: requests/s, p50, p99.
measure() {  # url
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$1" >/dev/null  # warm-up
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$1" >"$dir/wrk.out"
  if grep -q 'Non-2xx' "$dir/wrk.out"; then
    echo "bench: non-2xx answers from $1" >&2; cat "$dir/wrk.out" >&2; exit 1
  fi
  awk '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v+0 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    END { printf "%.0f %.0f %.0f\n", rps, p50, p99 }' "$dir/wrk.out"
}

echo "gateway vs nginx reverse proxy: wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores, same upstream, $WORKERS worker(s) each"
printf '%-4s %-26s %12s %10s %10s %10s\n' run proxy requests/s "p50 (us)" "p99 (us)" "p99/nginx"
: >"$dir/rows"
for run in $(seq "$RUNS"); do
  read -r n_rps n_p50 n_p99 < <(measure "http://127.0.0.1:$PROXY/chat/")
  read -r t_rps t_p50 t_p99 < <(measure "http://127.0.0.1:$GW/chat/")
  row() { printf '%-4s %-26s %12s %10s %10s %10s\n' "$run" "$1" "$2" "$3" "$4" \
    "$(awk -v a="$4" -v b="$n_p99" 'BEGIN { printf "%.2fx", a / b }')"; }
  row "nginx proxy (baseline)" "$n_rps" "$n_p50" "$n_p99"
  row "tide gateway" "$t_rps" "$t_p50" "$t_p99"
  if [ -n "$TIDE_BEFORE" ]; then
    read -r b_rps b_p50 b_p99 < <(measure "http://127.0.0.1:$GW2/chat/")
    row "tide before (TIDE_BEFORE)" "$b_rps" "$b_p50" "$b_p99"
  fi
  echo "$n_rps $n_p99 $t_rps $t_p99" >>"$dir/rows"
done
read -r d_rps d_p50 d_p99 < <(measure "http://127.0.0.1:$UP/")
printf '%-4s %-26s %12s %10s %10s\n' "" "upstream direct (no proxy)" "$d_rps" "$d_p50" "$d_p99"
# Medians over the runs.
med() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
n_rps=$(cut -d' ' -f1 "$dir/rows" | med); n_p99=$(cut -d' ' -f2 "$dir/rows" | med)
t_rps=$(cut -d' ' -f3 "$dir/rows" | med); t_p99=$(cut -d' ' -f4 "$dir/rows" | med)
awk -v t="$t_rps" -v n="$n_rps" -v tp="$t_p99" -v np="$n_p99" -v r="$RUNS" 'BEGIN {
  printf "tide/nginx (median of %d): %.2fx requests/s, p99 %.2fx\n", r, t/n, tp/np }'
if [ "${BENCH_NO_FAIL:-0}" != 1 ]; then
  awk -v t="$t_rps" -v n="$n_rps" -v tp="$t_p99" -v np="$n_p99" 'BEGIN { exit !(t >= n && tp <= np) }' ||
    { echo "bench: target missed (tide >= nginx requests/s with p99 no worse)"; exit 1; }
fi
