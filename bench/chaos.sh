#!/usr/bin/env bash
# Chaos soak: load through `tide serve` while replicas are SIGKILLed, the group is scaled up and
# down, and tide itself is SIGKILLed and restarted on its state file. Prints requests by outcome,
# losses by cause, orphaned or duplicated replicas, tide's fds and RSS at the start and the end.
#   bench/chaos.sh [DURATION_S] [--clients N] [--seed N] [-v]     (default 300 s; see bench/chaos.py)
# TIDE: the tide binary (default build/bin/tide). Loopback only; python3 (stdlib) only.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/chaos.py "$@"
