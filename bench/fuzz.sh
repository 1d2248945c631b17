#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/: clang, ASan + UBSan) in build-fuzz and runs each for
# SECONDS (default 60), JOBS at a time (FUZZ_JOBS, default the number of cores), starting from its
# seed corpus (fuzz/corpus/<target>) and the inputs of past findings (fuzz/regressions/<target>,
# replayed first). Prints executions per target and the total. Exits 1 if a target found a
# crash, a leak, a hang (10 s for one input) or memory beyond 2 GB: the input is left in
# build-fuzz/findings/<target>/ and the log in build-fuzz/logs/<target>.log.
#   bench/fuzz.sh [SECONDS] [TARGET...]      (scripts/test.sh runs it for 20 s a target)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
jobs=${FUZZ_JOBS:-$(nproc)}

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTIDE_FUZZ=ON -DTIDE_BUILD_TESTS=OFF -DTIDE_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz_all

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(ls fuzz/corpus))
fi

dict_of() {
  case "$1" in
    fuzz_http_request | fuzz_response_head | fuzz_chunked) echo fuzz/dict/http.dict ;;
    fuzz_config) echo fuzz/dict/config.dict ;;
    fuzz_trace_csv | fuzz_trace_per_minute) echo fuzz/dict/trace.dict ;;
    fuzz_engine_metrics) echo fuzz/dict/prometheus.dict ;;
    *) echo fuzz/dict/json.dict ;;
  esac
}

run_one() {
  local t=$1 seconds=$2 dict=$3
  local work=build-fuzz/corpus/$t  # new inputs go here; the committed seeds stay as they are
  mkdir -p "$work" "build-fuzz/findings/$t" build-fuzz/logs
  local inputs=("$work" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && inputs+=("fuzz/regressions/$t")
  "build-fuzz/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -dict="$dict" -artifact_prefix="build-fuzz/findings/$t/" \
    "${inputs[@]}" >"build-fuzz/logs/$t.log" 2>&1
}
export -f run_one

status=0
for t in "${targets[@]}"; do echo "$t $seconds $(dict_of "$t")"; done |
  xargs -P "$jobs" -L 1 bash -c 'run_one "$0" "$1" "$2"' || status=1

printf '%-24s %14s %10s %8s  %s\n' target executions exec/s corpus result
total=0
for t in "${targets[@]}"; do
  log=build-fuzz/logs/$t.log
  stat() { awk -v k="stat::$1:" '$1 == k { print $2 }' "$log"; }
  runs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  units=$(ls "build-fuzz/corpus/$t" | wc -l)
  result=clean
  if grep -q -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|Test unit written' "$log"; then
    result="FOUND: $(grep -m1 -o 'Test unit written to .*' "$log" || echo "see $log")"
    status=1
  elif [ -z "$runs" ]; then
    result="did not run: see $log"
    status=1
  fi
  runs=${runs:-0}
  printf '%-24s %14s %10s %8s  %s\n' "$t" "$runs" "$rate" "$units" "$result"
  total=$((total + runs))
done
printf '%-24s %14s\n' total "$total"
exit $status
