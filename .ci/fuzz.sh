#!/usr/bin/env bash
# Fuzzes request-body and query-string parsing for a bounded time: .ci/fuzz.sh [SECONDS_PER_TARGET]
# (default 60). Needs rustup with a nightly toolchain and a C++ compiler (libFuzzer is C++); installs
# cargo-fuzz when missing. Builds every target once, runs each for the given time on one core,
# and exits non-zero when any target crashed, broke an invariant (naming the reproducer), or ran no input.
# What libFuzzer discovers goes to a temporary directory; the committed seeds in fuzz/corpus/ stay put.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
targets=(create_body update_body body_shaped list_query search_query)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
  echo "FAIL: no C++ compiler (c++, g++ or clang++); libFuzzer needs one" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

# -a: debug assertions and overflow checks on, so an overflow is a crash rather than a wrap.
fuzz=(cargo +nightly fuzz)
# The instrumented release build of the whole crate is most of this step (18 minutes on two cores
# from nothing), so its target directory lives outside the clone and is reused by the next run on
# this machine, as a CI cache would be (cargo rebuilds what changed).
target_dir=${SIMTEST_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/simtest/fuzz-target}
build=(-a --target-dir "$target_dir")
# Cargo keys a path crate by its path, so what another clone built of this crate and its fuzz
# targets is never reused: removing it keeps the cache from growing by a clone's worth (0.8 GB) a run.
own=(-name 'libsimtest-*' -o -name 'simtest-*' -o -name 'simtest_fuzz-*')
for target in "${targets[@]}"; do own+=(-o -name "$target-*"); done
if [ -d "$target_dir" ]; then find "$target_dir" \( "${own[@]}" \) -prune -exec rm -rf {} +; fi
echo "== building the fuzz targets (into $target_dir)"
start=$(date +%s)
"${fuzz[@]}" build "${build[@]}"
echo "built in $(($(date +%s) - start)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
  case $target in
    create_body | update_body) dict=(-dict="$PWD/fuzz/body.dict") ;;
    list_query | search_query) dict=(-dict="$PWD/fuzz/query.dict") ;;
    *) dict=() ;;
  esac
  mkdir -p "$work/$target" "fuzz/artifacts/$target"
  before=$(ls "fuzz/artifacts/$target")
  echo "== fuzzing $target for ${seconds}s"
  log="$work/$target.log"
  if "${fuzz[@]}" run "${build[@]}" "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    # A target that exits 0 without running an input proved nothing: libFuzzer's final stats must
    # show at least one executed unit.
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    grep -E '^Done [0-9]+ runs' "$log" || tail -n 3 "$log"
    if [ "${runs:-0}" -lt 1 ]; then
      echo "FAIL: $target ran no input (executed units: ${runs:-none reported})"
      failed+=("$target")
    fi
  else
    tail -n 40 "$log"
    failed+=("$target")
    for f in $(ls "fuzz/artifacts/$target"); do
      if ! grep -qxF "$f" <<<"$before"; then
        echo "FAIL: $target: reproducer fuzz/artifacts/$target/$f"
        echo "      rerun with: cargo +nightly fuzz run ${build[*]} $target fuzz/artifacts/$target/$f"
      fi
    done
  fi
done

echo "== fuzzing took $(($(date +%s) - start)) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAIL: crashes, or no input run, in ${failed[*]}" >&2
  exit 1
fi
echo "no crashes"
