#!/usr/bin/env bash
# Runs every test: formatting check, the full suite in a release build (the .deb package and the
# README's commands included), and the suite again under AddressSanitizer +
# UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
jobs=$(nproc)

echo "== clang-format"
unformatted=$(git ls-files '*.cc' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c warning || true)
if [ "$unformatted" != "0" ]; then
  git ls-files '*.cc' '*.h' | xargs clang-format --dry-run 2>&1 | grep warning | head -20
  echo "clang-format: $unformatted places need formatting (run: git ls-files '*.cc' '*.h' | xargs clang-format -i)"
  exit 1
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

echo "== release build and tests"
# Tests and benchmarks on explicitly: a build first configured by scripts/demo.sh has them off.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDE_BUILD_TESTS=ON \
  -DTIDE_BUILD_BENCH=ON "${launcher[@]}" >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== the README's commands"
scripts/check-readme.sh build

echo "== ASan + UBSan build and tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTIDE_SANITIZE=ON -DTIDE_BUILD_TESTS=ON -DTIDE_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== fuzz targets (clang, ASan + UBSan; 20 s each)"
bench/fuzz.sh 20
