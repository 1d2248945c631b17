#!/usr/bin/env bash
# The main job: build tide, start `tide serve` with examples/quickstart.yaml (an endpoint of
# emulated model servers, 0 to 4 replicas, on this machine), drive a short burst of requests, and
# print the replica count as it scales up from zero and back down to zero. The dashboard is at
# http://$API/ meanwhile; with SCREENSHOT=FILE.png a headless chromium saves a picture of it
# during the burst (docs/dashboard.png comes from `SCREENSHOT=docs/dashboard.png scripts/demo.sh`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

GATEWAY=${GATEWAY:-127.0.0.1:8080}
API=${API:-127.0.0.1:8081}
mkdir -p out/demo
log=out/demo/serve.log
started=$(date +%s)
# The admin API's token: the one tide serve keeps in its state file (made at its first start),
# as a user gets it, rather than one from this shell's TIDE_API_TOKEN.
env -u TIDE_API_TOKEN build/bin/tide serve --config examples/quickstart.yaml --listen "$GATEWAY" \
  --api "$API" --state out/demo/tide-state.db 2>"$log" &
serve=$!
cleanup() { kill "$serve" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://$API/healthz" >/dev/null && break
  kill -0 "$serve" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
TIDE_API_TOKEN=$(build/bin/tide token show --state out/demo/tide-state.db 2>/dev/null)
export TIDE_API_TOKEN
auth=(-H "Authorization: Bearer $TIDE_API_TOKEN")

echo
echo "tide serve is up: gateway http://$GATEWAY/chat/ , API http://$API/v1/endpoints (log: $log)."
echo "Dashboard: http://$API/ (live charts, decisions, groups compared); metrics: http://$API/metrics"
echo "The API's token, for the dashboard's token box and for tide status / curl in another shell:"
echo "  export TIDE_API_TOKEN=$TIDE_API_TOKEN"
echo "  (any time later: export TIDE_API_TOKEN=\$(build/bin/tide token show --state out/demo/tide-state.db))"
echo "The endpoint starts with 0 replicas. Sending 48 requests over 6 s (1 s of work each,"
echo "4 slots per replica, 2 s cold start): tide holds them while replicas start, none fails."
echo
shot=""
if [ -n "${SCREENSHOT:-}" ]; then
  # The browser opens the dashboard first, so that its live charts cover the whole burst.
  [ -d tests/web/node_modules ] || (cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
  rm -f out/demo/page-ready
  node tests/web/screenshot.mjs "http://$API/" "$SCREENSHOT" 24 out/demo/page-ready &
  shot=$!
  for _ in $(seq 300); do [ -e out/demo/page-ready ] && break; sleep 0.1; done
fi
codes=out/demo/codes.txt
: >"$codes"
(
  for i in $(seq 48); do
    curl -s -o /dev/null -w '%{http_code}\n' "http://$GATEWAY/chat/v1/completions" \
      -H 'Content-Type: application/json' -d "{\"prompt\": \"hello $i\", \"max_tokens\": 8}" >>"$codes" &
    sleep 0.125
  done
  wait
) &
load=$!

printf '%6s  %-28s %7s %7s %8s %6s %9s\n' time replicas desired ready starting queued in_flight
start=$(date +%s.%N)
idle_rounds=0
while :; do
  s=$(curl -s "${auth[@]}" "http://$API/v1/endpoints/chat" | jq -r '.groups[0] | "\(.desired) \(.ready) \(.starting) \(.draining) \(.queued) \(.in_flight)"')
  read -r desired ready starting draining queued in_flight <<<"$s"
  now=$(date +%s.%N)
  bar=$(printf '%*s' "$ready" '' | tr ' ' '#')$(printf '%*s' "$starting" '' | tr ' ' '+')
  printf '%5.1fs  %-28s %7s %7s %8s %6s %9s\n' "$(awk -v a="$now" -v b="$start" 'BEGIN { print a - b }')" "$bar" "$desired" \
    "$ready" "$starting" "$queued" "$in_flight"
  if ! kill -0 "$load" 2>/dev/null && [ "$ready" = 0 ] && [ "$starting" = 0 ] && [ "$draining" = 0 ]; then
    idle_rounds=$((idle_rounds + 1))
    [ $idle_rounds -ge 2 ] && break
  fi
  sleep 1
done
wait "$load" 2>/dev/null || true
[ -n "$shot" ] && { wait "$shot" || echo "the screenshot failed"; }
echo "  (# ready replica, + starting)"
echo
echo "Answers: $(sort "$codes" | uniq -c | awk '{printf "%s x %s  ", $1, $2}')"
echo "Scaling decisions, with their reasons:"
curl -s "${auth[@]}" "http://$API/v1/endpoints/chat" | jq -r '.decisions[] | "  \(.from) -> \(.to): \(.reason)"'
echo "The same run from the state file, as \`tide history chat\` shows it:"
build/bin/tide history chat --since "$(($(date +%s) - started + 5))s" --step 5s --decisions 0 --api "$API"
kill -TERM "$serve"
wait "$serve" && echo "tide serve stopped cleanly: every replica it started is gone."
trap - EXIT
