#!/usr/bin/env bash
# One command for every API benchmark (BENCHMARKS.md): builds simtest and the load generator in
# release, then runs N = 10k and 100k on the embedded store, the same on MongoDB when
# SIMTEST_BENCH_MONGODB_URI is set (e.g. FerretDB 2 + DocumentDB from ../shared/documentdb/start.sh),
# and N = 1M embedded with --long.
#
#   bench/run.sh [--long] [--quick] [--sizes 10000,100000] [other simtest-bench run flags]
#
# Tables go to stdout (Markdown); progress to stderr. Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-bench}"
long=false
sizes="10000,100000"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --long) long=true ;;
    --sizes) sizes="$2"; shift ;;
    *) extra+=("$1") ;;
  esac
  shift
done
$long && sizes="$sizes,1000000"

cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/Cargo.toml
simtest="$CARGO_TARGET_DIR/release/simtest"
bench="$CARGO_TARGET_DIR/release/simtest-bench"

echo "# simtest benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, commit $(git rev-parse --short HEAD)"
mongo_uri="${SIMTEST_BENCH_MONGODB_URI:-}"
IFS=',' read -ra ns <<< "$sizes"
for n in "${ns[@]}"; do
  env -u SIMTEST_BENCH_MONGODB_URI "$bench" run --simtest "$simtest" --n "$n" "${extra[@]}"
done
if [ -n "$mongo_uri" ]; then
  for n in "${ns[@]}"; do
    [ "$n" -gt 100000 ] && continue # 1M is embedded only
    "$bench" run --simtest "$simtest" --n "$n" --mongodb-uri "$mongo_uri" "${extra[@]}"
  done
else
  echo
  echo "(MongoDB skipped: set SIMTEST_BENCH_MONGODB_URI, e.g. to ../shared/documentdb/start.sh DIR)"
fi
