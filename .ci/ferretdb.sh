#!/usr/bin/env bash
# Prints the path of a working FerretDB v1.24.2 binary, building it first when there is none.
#
# `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a binary that panics at start:
# the published module lacks build/version/version.txt, which the version package embeds. So the module
# source is copied, the file is added, and the binary is built from the copy.
set -euo pipefail

version=v1.24.2
works() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "$version"; }

for candidate in "${SIMTEST_FERRETDB_BIN:-}" "$HOME/.cache/simtest/ferretdb-$version/ferretdb" "$(go env GOPATH)/bin/ferretdb"; do
  if [ -n "$candidate" ] && works "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

out_dir="$HOME/.cache/simtest/ferretdb-$version"
mkdir -p "$out_dir"
src=$(go mod download -json "github.com/FerretDB/FerretDB@$version" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"
echo "building FerretDB $version (a few minutes, once)" >&2
(cd "$work" && go build -trimpath -o "$out_dir/ferretdb" ./cmd/ferretdb) >&2
works "$out_dir/ferretdb" || { echo "the FerretDB build does not run" >&2; exit 1; }
echo "$out_dir/ferretdb"
