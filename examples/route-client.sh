#!/usr/bin/env bash
# Two-step routing with curl (docs/agent.md). Step 1 asks tide's API for a ready replica and a
# token good for one request; step 2 sends the payload straight to that replica's agent, so it
# never passes through tide.
#   build/bin/tide serve --config examples/agent.yaml &
#   examples/route-client.sh [API_URL] [ENDPOINT] [JSON_BODY]
set -euo pipefail
api=${1:-http://127.0.0.1:8081}
endpoint=${2:-chat}
body=${3:-'{"prompt": "hello", "max_tokens": 8}'}

# Step 1: POST /v1/route. While no replica is ready (a scale from zero has just begun) it answers
# 503 with the group's state and Retry-After; come back then.
for _ in $(seq 1 30); do
  answer=$(curl -s -w '\n%{http_code}' -X POST "$api/v1/route" \
    -H 'Content-Type: application/json' -d "{\"endpoint\": \"$endpoint\"}")
  code=${answer##*$'\n'}
  route=${answer%$'\n'*}
  [ "$code" = 200 ] && break
  if [ "$code" != 503 ]; then
    echo "route: $code $route" >&2
    exit 1
  fi
  wait_s=$(jq -r '.state.retry_after_s // 1' <<<"$route")
  echo "no replica ready: $(jq -c .state <<<"$route"); again in ${wait_s}s" >&2
  sleep "$wait_s"
done
[ "$code" = 200 ] || { echo "no replica became ready" >&2; exit 1; }
url=$(jq -r .url <<<"$route")
token=$(jq -r .token <<<"$route")
echo "replica $(jq -r .replica <<<"$route") at $url, token valid until $(jq -r .expires_at <<<"$route")" >&2

# Step 2: the payload, straight to the replica's agent, with the token (good once).
curl -s "$url/v1/completions" -H "Tide-Route-Token: $token" \
  -H 'Content-Type: application/json' -d "$body"
echo
