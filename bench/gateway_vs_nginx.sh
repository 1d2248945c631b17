#!/usr/bin/env bash
# The gateway against nginx as a reverse proxy, same upstream, same run:
#   upstream  nginx answering a fixed 200 ("ok\n") on 127.0.0.1, one worker
#   nginx     proxy_pass to it with upstream keep-alive (a well-configured nginx proxy)
#   tide      `tide serve` with a static provisioner pointing at the same upstream, measured
#             three ways: routing by URL prefix (/chat/v1/chat/completions), routing by the
#             body's "model" (/v1/chat/completions, as OpenAI clients send), and routing by model
#             on a second `tide serve` with client keys on (server.client_auth: keys).
# Every row sends the same request: an OpenAI chat completion POST (a ~100-byte JSON body) with
# the same `Authorization: Bearer` key (checked only by the keys-on tide, ignored elsewhere).
# Load: wrk, 64 connections, DURATION each (default 10s), after a short warm-up.
# The proxies get the same number of workers, WORKERS (default: one per core, what nginx's
# worker_processes auto and tide's server.threads: 0 choose).
# RUNS (default 1) repeats the measurement, the rows alternately, a row per proxy per run.
# TIDE_BEFORE=path/to/another/tide adds that binary (prefix routing) as another row in the same
# runs (an A/B of a change against the same nginx, upstream and machine state).
# Prints requests/s and latency percentiles of each side by side; exits non-zero, unless
# BENCH_NO_FAIL=1, if on the medians over the runs: tide (prefix) serves fewer requests/s than
# nginx or its p99 is worse; routing by model serves under 90% of prefix routing's requests/s;
# or the p99 with keys on is over 110% of the p99 with keys off (routing by model both).
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
GW2=$(free_port); API2=$(free_port); GWK=$(free_port); APIK=$(free_port)
TOKEN=bench-admin-token-0123456789

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
tide_config() {  # gateway port, api port, more keys of server:
cat <<EOF
server: {listen: 127.0.0.1:$1, api: 127.0.0.1:$2, threads: $WORKERS, api_token: $TOKEN${3:-}}
state: {path: ":memory:"}
endpoints:
  - name: chat
    models: [bench-model]
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
tide_config "$GWK" "$APIK" ", client_auth: keys" >"$dir/tide-keys.yaml"

nginx -p "$dir/up" -c "$dir/up/nginx.conf" & pids+=($!)
nginx -p "$dir/proxy" -c "$dir/proxy/nginx.conf" & pids+=($!); proxy_pid=$!
"$TIDE" serve --config "$dir/tide.yaml" 2>"$dir/tide.log" & pids+=($!); tide_pid=$!
"$TIDE" serve --config "$dir/tide-keys.yaml" 2>"$dir/tide-keys.log" & pids+=($!); keys_pid=$!
before_pid=
[ -z "$TIDE_BEFORE" ] || { "$TIDE_BEFORE" serve --config "$dir/tide2.yaml" 2>"$dir/tide2.log" & pids+=($!); before_pid=$!; }

wait_for() {  # url, more curl arguments
  for _ in $(seq 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "${@:2}" "$1" || true)" = 200 ] && return 0
    sleep 0.05
  done
  echo "bench: $1 never answered 200"; cat "$dir"/tide*.log; exit 1
}
wait_for "http://127.0.0.1:$UP/"
wait_for "http://127.0.0.1:$PROXY/chat/"
wait_for "http://127.0.0.1:$GW/chat/"
wait_for "http://127.0.0.1:$APIK/v1/keys" -H "Authorization: Bearer $TOKEN"
[ -z "$TIDE_BEFORE" ] || wait_for "http://127.0.0.1:$GW2/chat/"
KEY=$("$TIDE" keys add bench --api "http://127.0.0.1:$APIK" --token "$TOKEN" 2>>"$dir/tide-keys.log" | grep '^sk-tide-')
wait_for "http://127.0.0.1:$GWK/chat/" -H "Authorization: Bearer $KEY"

# The request of every row: an OpenAI chat completion with the key.
cat >"$dir/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"model": "bench-model", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
EOF

# CPU time (user + system, in clock ticks) of process $1 and its children (nginx's workers),
# every thread counted: what the proxy spent, whatever else loads the machine.
cpu_ticks() {  # pid
  local total=0 p
  for p in "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
# wrk's latency report, in microseconds: requests/s, p50, p99, and the CPU the proxy (pid $2)
# spent per request (0 without a pid).
measure() {  # url, pid
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$dir/post.lua" "$1" >/dev/null  # warm-up
  local cpu0=0 cpu1=0
  [ -z "${2:-}" ] || cpu0=$(cpu_ticks "$2")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$dir/post.lua" --latency "$1" >"$dir/wrk.out"
  [ -z "${2:-}" ] || cpu1=$(cpu_ticks "$2")
  if grep -q 'Non-2xx' "$dir/wrk.out"; then
    echo "bench: non-2xx answers from $1" >&2; cat "$dir/wrk.out" >&2; exit 1
  fi
  awk -v ticks=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v+0 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    / requests in / { n = $1 }
    END { printf "%.0f %.0f %.0f %.1f\n", rps, p50, p99, n ? ticks / hz * 1e6 / n : 0 }' "$dir/wrk.out"
}

# The rows, measured in this order in each run; row i's results go to $dir/rows.i.
names=("nginx proxy (baseline)" "tide, prefix routing" "tide, routing by model" "tide, by model, keys on")
procs=("$proxy_pid" "$tide_pid" "$tide_pid" "$keys_pid")
urls=("http://127.0.0.1:$PROXY/chat/v1/chat/completions" "http://127.0.0.1:$GW/chat/v1/chat/completions"
  "http://127.0.0.1:$GW/v1/chat/completions" "http://127.0.0.1:$GWK/v1/chat/completions")
if [ -n "$TIDE_BEFORE" ]; then
  names+=("tide before (TIDE_BEFORE)"); procs+=("$before_pid"); urls+=("http://127.0.0.1:$GW2/chat/v1/chat/completions")
fi

echo "gateway vs nginx reverse proxy: wrk -t$THREADS -c$CONNECTIONS -d$DURATION, POST chat completion, $(nproc) cores, same upstream, $WORKERS worker(s) each"
printf '%-4s %-26s %12s %10s %10s %10s %12s\n' run proxy requests/s "p50 (us)" "p99 (us)" "p99/nginx" \
  "CPU us/req"
for run in $(seq "$RUNS"); do
  for i in "${!names[@]}"; do
    read -r rps p50 p99 cpu < <(measure "${urls[$i]}" "${procs[$i]}")
    [ "$i" != 0 ] || n_p99=$p99
    printf '%-4s %-26s %12s %10s %10s %10s %12s\n' "$run" "${names[$i]}" "$rps" "$p50" "$p99" \
      "$(awk -v a="$p99" -v b="$n_p99" 'BEGIN { printf "%.2fx", a / b }')" "$cpu"
    echo "$rps $p50 $p99 $cpu" >>"$dir/rows.$i"
  done
done
read -r d_rps d_p50 d_p99 _ < <(measure "http://127.0.0.1:$UP/v1/chat/completions")
printf '%-4s %-26s %12s %10s %10s\n' "" "upstream direct (no proxy)" "$d_rps" "$d_p50" "$d_p99"

# Medians over the runs of row $1: requests/s, p99.
med() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rps_of() { cut -d' ' -f1 "$dir/rows.$1" | med; }
p99_of() { cut -d' ' -f3 "$dir/rows.$1" | med; }
cpu_of() { cut -d' ' -f4 "$dir/rows.$1" | med; }
n_rps=$(rps_of 0); n_p99=$(p99_of 0); t_rps=$(rps_of 1); t_p99=$(p99_of 1)
m_rps=$(rps_of 2); m_p99=$(p99_of 2); k_rps=$(rps_of 3); k_p99=$(p99_of 3)
echo "medians of $RUNS run(s):"
awk -v t="$t_rps" -v n="$n_rps" -v tp="$t_p99" -v np="$n_p99" -v m="$m_rps" -v mp="$m_p99" \
  -v k="$k_rps" -v kp="$k_p99" 'BEGIN {
  printf "  tide (prefix)/nginx: %.2fx requests/s, p99 %.2fx\n", t / n, tp / np
  printf "  by model/prefix: %.2fx requests/s, p99 %.2fx\n", m / t, mp / tp
  printf "  keys on/off (by model): %.2fx requests/s, p99 %.2fx\n", k / m, kp / mp }'
echo "  CPU per request (us): nginx $(cpu_of 0), tide prefix $(cpu_of 1), by model $(cpu_of 2), keys on $(cpu_of 3)"
failed=0
check() {  # description, awk condition on a and b, a, b
  if awk -v a="$3" -v b="$4" "BEGIN { exit !($2) }"; then echo "  met:    $1"; else echo "  MISSED: $1"; failed=1; fi
}
check "tide (prefix) >= nginx requests/s" "a >= b" "$t_rps" "$n_rps"
check "tide (prefix) p99 <= nginx p99" "a <= b" "$t_p99" "$n_p99"
check "routing by model >= 90% of prefix routing's requests/s" "a >= 0.9 * b" "$m_rps" "$t_rps"
check "p99 with keys on <= 110% of keys off (by model)" "a <= 1.1 * b" "$k_p99" "$m_p99"
if [ "$failed" = 1 ] && [ "${BENCH_NO_FAIL:-0}" != 1 ]; then
  echo "bench: target missed"; exit 1
fi
