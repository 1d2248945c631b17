#!/usr/bin/env bash
# Installs what is missing and builds the tide binary (build/bin/tide), release with debug info,
# and the dashboard (build/share/tide/web) when npm is there. A first build configures without
# the tests and benchmarks (scripts/test.sh turns them on); an existing build keeps its settings.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
only_tide=()
[ -f build/CMakeCache.txt ] || only_tide=(-DTIDE_BUILD_TESTS=OFF -DTIDE_BUILD_BENCH=OFF)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "${only_tide[@]}" >/dev/null
targets=(tide)
command -v npm >/dev/null && targets+=(tide_web)
cmake --build build -j "$(nproc)" --target "${targets[@]}"
