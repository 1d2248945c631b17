#!/usr/bin/env bash
# The simulation demo: build tide and replay a bursty workload against every scaling policy, printing
# the comparison and writing an HTML report to out/demo/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
echo
echo "Four hours of chat traffic rising and falling between 1.2 and 12 requests/s (two daily-like"
echo "cycles), 45 s cold starts, SLO: start within 2 s. Every policy sees the very same requests."
echo
build/bin/tide sim --config examples/demo.yaml --synthetic diurnal --rate 12 --duration 4h \
  --period 2h --compare all --out out/demo
