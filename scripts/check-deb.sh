#!/usr/bin/env bash
# Builds the Debian package of a built tree (cpack -G DEB), unpacks it into a scratch root with
# dpkg -x (nothing is installed on this machine), and checks what a user gets: `tide --version`
# names the commit, the package depends on the libraries tide links, and the installed tide
# validates the installed example with the installed dashboard beside it.
# Usage: scripts/check-deb.sh BUILD_DIR   (ctest deb_package runs it)
set -euo pipefail
build=$(cd "${1:?usage: check-deb.sh BUILD_DIR}" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$build" && cpack -G DEB -B "$scratch/pkg" >"$scratch/cpack.log" 2>&1) ||
  { cat "$scratch/cpack.log"; exit 1; }
deb=$(ls "$scratch"/pkg/tide_*.deb)
echo "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"
depends=$(dpkg-deb --field "$deb" Depends)
echo "Depends: $depends"
for lib in libsqlite3 libsodium libyaml-cpp libzstd; do
  grep -q "$lib" <<<"$depends" || { echo "the package does not depend on $lib"; exit 1; }
done
dpkg -x "$deb" "$scratch/root"
tide="$scratch/root/usr/bin/tide"
version=$("$tide" --version)
echo "$version"
grep -Eq '^tide [0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-f]{7,}' <<<"$version" ||
  { echo "tide --version does not name a commit: $version"; exit 1; }
example="$scratch/root/usr/share/tide/examples/quickstart.yaml"
[ -f "$scratch/root/usr/share/doc/tide/README.md" ] || { echo "no docs in the package"; exit 1; }
# {tide} in the example is the installed binary: validate checks that it can run.
"$tide" validate "$example" >/dev/null
if [ -d "$build/share/tide/web" ]; then
  [ -f "$scratch/root/usr/share/tide/web/index.html" ] || { echo "no dashboard in the package"; exit 1; }
fi
echo "deb package ok"
