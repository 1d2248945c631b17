#!/usr/bin/env bash
# Installs the Debian packages tide builds and tests with (idempotent; quiet when all present).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config ccache clang-format
  clang libclang-rt-14-dev  # the fuzz targets (fuzz/, bench/fuzz.sh)
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libzstd-dev zstd
  libgtest-dev libgmock-dev libbenchmark-dev libboost1.81-dev libsqlite3-dev libsodium-dev libssl-dev
  curl jq
  python3  # bench/chaos.py, the chaos soak (ctest chaos_soak_short); stdlib only
  chromium fonts-dejavu-core
  slurmctld slurmd slurm-client munge  # the Slurm tests' single-node cluster (slurm-local.sh)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The dashboard (web/) builds with npm, and its browser test runs on node. A node that is already
# there (Debian's, or another that brings its own npm) is kept: Debian's npm conflicts with those.
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
