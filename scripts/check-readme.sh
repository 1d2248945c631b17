#!/usr/bin/env bash
# Runs the README's command blocks as written, against a built tree: every indented code block of
# README.md, one command per line, in order, in one shell (so `export` carries on), from a scratch
# directory that links the repository's build/, examples/ and data/ (state files and outputs land
# there, not in the clone).
#
# Rules:
#   - skipped: lines that run scripts/*.sh (the demo and the test suite run on their own: the
#     demo is the README's first command, the tests are what calls this script), and comments;
#   - `curl` fails on an HTTP error status (--fail-with-body): a 401 is a failure, not an answer;
#   - a command ending in `&` (tide serve) runs in the background; the next command waits until
#     its API answers /healthz (up to 30 s), and it is stopped with SIGTERM at the end, which must
#     end it cleanly (exit 0);
#   - the whole run is bounded: 10 minutes.
# Usage: scripts/check-readme.sh [BUILD_DIR]   (default build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
[ -x "$build/bin/tide" ] || { echo "no $build/bin/tide: build it first" >&2; exit 1; }
for port in 8080 8081; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: the README's tide serve needs 8080 and 8081" >&2
    exit 1
  fi
done
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ln -s "$build" "$scratch/build"
ln -s "$root/examples" "$scratch/examples"
[ -d "$root/data" ] && ln -s "$root/data" "$scratch/data"

# The commands: lines of indented blocks (4 spaces, after a blank line or another such line).
script="$scratch/readme-commands.sh"
{
  echo 'set -euo pipefail'
  echo 'curl() { command curl --fail-with-body --max-time 60 "$@"; }'
  echo 'wait_api() { for _ in $(seq 300); do command curl -sf localhost:8081/healthz >/dev/null && return; sleep 0.1; done; echo "tide serve did not come up" >&2; return 1; }'
  echo 'servers=()'
  echo 'trap '"'"'for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done'"'"' EXIT'
  awk '
    /^$/ { blank = 1; next }
    /^    [^ -]/ && (blank || inblock) { inblock = 1; sub(/^    /, ""); print; next }
    { blank = 0; inblock = 0 }
  ' "$root/README.md" | while IFS= read -r line; do
    command=${line%%#*}
    command=${command%"${command##*[![:space:]]}"}
    if [ -z "$command" ]; then continue; fi
    if [[ "$command" == scripts/*.sh* ]]; then
      echo "echo 'skipped: $command (runs on its own)'"
      continue
    fi
    printf 'echo %q\n' "+ $command"
    if [[ "$command" == *"&" ]]; then
      echo "$command"
      echo 'servers+=($!); wait_api'
    else
      echo "$command"
    fi
  done
  echo 'for pid in "${servers[@]}"; do kill -TERM "$pid"; wait "$pid"; done; servers=()'
  echo 'echo "README commands: all ran"'
} >"$script"
cd "$scratch"
env -u TIDE_API_TOKEN -u TIDE_API timeout 600 bash "$script"
