#!/usr/bin/env bash
# The main job: build tide and replay a bursty workload against every scaling policy, printing
# the comparison and writing an HTML report to out/demo/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
cmake --build build -j "$(nproc)" --target tide
echo
echo "Two hours of bursty chat traffic (12 requests/s for 5 minutes in every 20, idle between),"
echo "60 s-class cold starts, SLO: start within 2 s. Each policy sees the very same requests."
echo
build/bin/tide sim --config examples/demo.yaml --synthetic bursts --rate 12 --duration 2h \
  --period 20m --compare all --out out/demo
