#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on a stable toolchain.
#
#   cargo install cargo-fuzz     # once
#   fuzz/run.sh 600              # 10 minutes per target
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, ...);
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them. If the AddressSanitizer
# build fails (a toolchain without the ASan runtime), the script falls back to
# `--sanitizer none` (still catches every panic, overflow check and OOM); set
# FUZZ_SANITIZER=none to skip the attempt.
#
# New inputs go to fuzz/target/work-corpus/<target> (ignored by git); the
# committed seeds in fuzz/corpus/<target> are only read. A crash leaves its input
# in fuzz/artifacts/<target>/ and stops the run with a non-zero status: add it to
# fuzz/regressions/<target>/ and it becomes a test (tests/it/fuzz_regressions.rs).
# Extra arguments after SECONDS go to libFuzzer (e.g. -jobs=2 -workers=2).
set -euo pipefail

seconds=${1:-60}
shift || true
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz_dir")
cd "$root"
export RUSTC_BOOTSTRAP=1
targets=(presets generic layer)

sanitizer=${FUZZ_SANITIZER:-address}
if ! cargo fuzz build -O -s "$sanitizer" >/dev/null 2>"$fuzz_dir/target-build.log"; then
    if [[ "$sanitizer" == none ]]; then
        cat "$fuzz_dir/target-build.log" >&2
        exit 1
    fi
    echo "fuzz/run.sh: the $sanitizer build failed (see fuzz/target-build.log); using --sanitizer none" >&2
    sanitizer=none
    cargo fuzz build -O -s none
fi
rm -f "$fuzz_dir/target-build.log"

summary=()
for target in "${targets[@]}"; do
    work="$fuzz_dir/target/work-corpus/$target"
    mkdir -p "$work" "$fuzz_dir/artifacts/$target"
    log="$fuzz_dir/target/$target.log"
    echo "== $target: ${seconds}s, sanitizer $sanitizer" >&2
    status=0
    cargo fuzz run -O -s "$sanitizer" "$target" "$work" "$fuzz_dir/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 \
        -dict="$fuzz_dir/dict/webhooks.dict" "$@" 2>&1 | tee "$log" | grep -E '^(#[0-9]+.*DONE|Done|==|SUMMARY|thread .* panicked|stat::number_of_executed_units)' >&2 || true
    status=${PIPESTATUS[0]}
    runs=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
    summary+=("$target: $runs executions in ${seconds}s (exit $status)")
    if [[ $status -ne 0 ]]; then
        printf '%s\n' "${summary[@]}" >&2
        echo "fuzz/run.sh: $target failed; the input is in fuzz/artifacts/$target/ (log: $log)" >&2
        exit "$status"
    fi
done
printf '%s\n' "${summary[@]}"
