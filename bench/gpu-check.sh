#!/usr/bin/env bash
# The real-GPU check: what only a machine with an NVIDIA GPU shows (docs/agent.md, "Measured on
# a real GPU").
#
#   bench/gpu-check.sh                 # from the repo root, after building build/bin/tide
#   STUB=1 PHASE_S=4 bench/gpu-check.sh   # no GPU: stub replicas, no nvidia-smi (tries the rest)
#
# Runs `tide serve` with one endpoint `gpu`: a local group (gpus [0], gpus_per_replica 1, agents
# on, 0..2 replicas) of scripts/gpu-replica.py (bf16 matrix products on cuda:0 per request).
# bench/gpu_check.py then sends load in phases (idle, ~50% busy, ~100% busy, idle) while it
# samples the agents' GPU readings (GET /v1/endpoints/gpu) beside nvidia-smi into samples.csv,
# and checks the GPU pool (a second replica is refused "no free GPU"; after a scale to zero a
# new replica gets GPU 0 again). Last, tide is stopped and no replica process may outlive it.
#
# Everything goes to $OUT (default out/gpu-check): tide.yaml, serve.log, samples.csv,
# metrics.txt, result.json, gpu.txt, check.log. Loopback only; bounded (< 6 minutes).
# Variables: TIDE (default build/bin/tide, else bin/tide beside this script), REPLICA, OUT,
# STUB, PHASE_S (25), API_PORT (18181), GATEWAY_PORT (18180).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pick() { for f in "$@"; do [[ -e $f ]] && { echo "$f"; return; }; done; echo "$1"; }
TIDE=$(realpath -m "${TIDE:-$(pick build/bin/tide "$here/bin/tide")}")
REPLICA=$(realpath -m "${REPLICA:-$(pick scripts/gpu-replica.py "$here/gpu-replica.py")}")
DRIVER=$(realpath -m "$(pick "$here/gpu_check.py" bench/gpu_check.py)")
OUT=${OUT:-out/gpu-check}
STUB=${STUB:-0}
PHASE_S=${PHASE_S:-25}
API_PORT=${API_PORT:-18181}
GATEWAY_PORT=${GATEWAY_PORT:-18180}
TOKEN=gpu-check-token-0123456789
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
exec > >(tee "$OUT/check.log") 2>&1

die() { echo "gpu-check: $*" >&2; exit 2; }
[[ -x $TIDE ]] || die "no tide binary at $TIDE (build it, or set TIDE)"
[[ -f $REPLICA ]] || die "no replica script at $REPLICA (set REPLICA)"
"$TIDE" --help > /dev/null 2>&1 || die "$TIDE does not run here (missing libraries? ldd $TIDE)"
if [[ $STUB == 1 ]]; then
  echo "gpu-check: STUB=1: no GPU, stub replicas, no nvidia-smi readings" | tee "$OUT/gpu.txt"
else
  command -v nvidia-smi > /dev/null ||
    die "nvidia-smi not found: this check needs an NVIDIA GPU and its driver (STUB=1 tries the rest without one)"
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,utilization.gpu \
    --format=csv > "$OUT/gpu.txt" 2>&1 || die "nvidia-smi failed: $(cat "$OUT/gpu.txt")"
  # The agents dlopen libnvidia-ml.so.1: where the loader would not find it, say where it is.
  if ! ldconfig -p 2> /dev/null | grep -q 'libnvidia-ml\.so\.1'; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
      if [[ -e $d/libnvidia-ml.so.1 ]]; then
        export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        echo "libnvidia-ml.so.1 in $d (not in ldconfig's cache)" >> "$OUT/gpu.txt"
        break
      fi
    done
  fi
  # How NVML splits the memory (memory.reserved: what nvidia-smi leaves out of memory.used).
  nvidia-smi --query-gpu=memory.total,memory.reserved,memory.used,memory.free --format=csv \
    >> "$OUT/gpu.txt" 2>&1 || true
  cat "$OUT/gpu.txt"
  timeout 120 python3 -c 'import torch; assert torch.cuda.is_available(), "no CUDA device";
print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))' \
    >> "$OUT/gpu.txt" 2>&1 || die "python3 has no working torch with CUDA: $(tail -3 "$OUT/gpu.txt")"
  tail -1 "$OUT/gpu.txt"
fi

# JSON (a YAML file tide reads as any other), so that the driver can PUT its endpoint back
# changed with no YAML library. The queue policy with queue_size 1000 never scales on load (the
# phases run on one replica); the pool check sets min/max through PUT.
replica_args="\"--port\", \"{port}\""
[[ $STUB == 1 ]] && replica_args+=", \"--stub\""
cat > "$OUT/tide.yaml" << EOF
{"server": {"listen": "127.0.0.1:$GATEWAY_PORT", "api": "127.0.0.1:$API_PORT",
            "api_token": "$TOKEN"},
 "state": {"path": ":memory:"},
 "route": {"token_ttl": "30s"},
 "endpoints": [
  {"name": "gpu", "slo": {"max_wait": "5s"}, "queue": {"max_length": 100, "timeout": "180s"},
   "groups": [
    {"name": "h200", "min_replicas": 0, "max_replicas": 2, "concurrency": 4, "cold_start": "20s",
     "agent": {"enabled": true, "work": "requests", "report_interval": "1s"},
     "provisioner": {"kind": "local", "command": ["python3", "$REPLICA", $replica_args],
                     "gpus": [0], "gpus_per_replica": 1,
                     "ready": {"path": "/health", "interval": "200ms"}},
     "scaling": {"policy": "queue", "queue_size": 1000, "idle_timeout": "10m", "tick": "500ms"}}]}]}
EOF

"$TIDE" serve --config "$OUT/tide.yaml" --stop-grace 5s > "$OUT/serve.log" 2>&1 &
tide_pid=$!
# Replica processes: model servers (the replica script) and their agents (`tide agent`).
leftovers() {
  local d c
  for d in /proc/[0-9]*; do
    c=$(tr '\0' ' ' 2> /dev/null < "$d/cmdline") || continue
    if [[ $c == *"$REPLICA"* || $c == *" agent "*"--endpoint gpu "* ]]; then echo "${d#/proc/}"; fi
  done
}
cleanup() {
  if kill -0 "$tide_pid" 2> /dev/null; then kill -KILL "$tide_pid" 2> /dev/null; fi
  for p in $(leftovers); do kill -KILL "$p" 2> /dev/null; done
}
trap cleanup EXIT

driver_args=(--api "http://127.0.0.1:$API_PORT" --gateway "http://127.0.0.1:$GATEWAY_PORT"
  --token "$TOKEN" --config "$OUT/tide.yaml" --out "$OUT" --phase-s "$PHASE_S")
[[ $STUB == 1 ]] && driver_args+=(--stub)
PYTHONUNBUFFERED=1 timeout 300 python3 "$DRIVER" "${driver_args[@]}"
driver_rc=$?

echo
echo "== stop =="
during=$(leftovers | wc -l)
t0=$(date +%s%N)
kill -TERM "$tide_pid" 2> /dev/null
tide_rc=timeout
for _ in $(seq 300); do
  if ! kill -0 "$tide_pid" 2> /dev/null; then
    wait "$tide_pid"
    tide_rc=$?
    break
  fi
  sleep 0.1
done
stop_ms=$((($(date +%s%N) - t0) / 1000000))
left=$(leftovers)
echo "replica processes (model servers and agents) before the stop: $during"
echo "tide serve stopped in ${stop_ms} ms with status $tide_rc"
if [[ -n $left ]]; then
  echo "LEFT OVER after tide's stop:"
  for p in $left; do echo "  $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null)"; done
else
  echo "no replica process outlived tide"
fi
if [[ $STUB != 1 ]]; then
  echo "GPU processes after the stop (nvidia-smi --query-compute-apps):"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader || true
  nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
fi
echo "tide's log on the GPU pool:"
grep -m 3 -i "no free GPU" "$OUT/serve.log" || echo "  (no 'no free GPU' line)"
echo "driver status $driver_rc; files in $OUT"
[[ $driver_rc == 0 && $tide_rc == 0 && -z $left ]]
