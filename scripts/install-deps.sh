#!/usr/bin/env bash
# Installs the Debian packages tide needs (idempotent; quiet when all present).
#   scripts/install-deps.sh          what building and running tide needs (scripts/demo.sh)
#   scripts/install-deps.sh --test   that, plus what the tests add: GoogleTest, Google Benchmark,
#                                    clang-format, chromium for the dashboard's browser test, and
#                                    a single-node Slurm cluster (scripts/test.sh)
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config ccache
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libzstd-dev
  libboost1.81-dev libsqlite3-dev libsodium-dev libssl-dev
  curl jq  # the demo talks to the API with them
)
test_packages=(
  clang-format zstd file                      # file: cpack -G DEB (the .deb test)
  clang libclang-rt-14-dev                    # the fuzz targets (fuzz/, bench/fuzz.sh)
  python3                                     # bench/chaos.py, the chaos soak; stdlib only
  libgtest-dev libgmock-dev libbenchmark-dev
  chromium fonts-dejavu-core                  # the dashboard's browser test
  slurmctld slurmd slurm-client munge         # the Slurm tests' single-node cluster (slurm-local.sh)
)
case "${1:-}" in
  --test) packages+=("${test_packages[@]}") ;;
  "") ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The dashboard (web/) builds with npm; its browser test and the OpenAI SDK test (tests/openai_sdk)
# run on node. A node that is already there (Debian's, or another that brings its own npm) is
# kept: Debian's npm conflicts with those.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -q
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}"
fi
