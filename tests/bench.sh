#!/usr/bin/env bash
# The performance benchmark (not part of tests/test.sh, and never pass/fail on a number):
#  1. release artifacts with cargo lambda: x86_64, and arm64 when the aarch64 standard library is
#     installed (otherwise it says why not and goes on with x86_64);
#  2. the divan benchmarks of the warm path (tests/benches/warm.rs);
#  3. health-sweeper's scale benchmark (tests/benches/sweep.rs);
#  4. the function benchmark (tests/src/bin/bench): init over 20 cold starts, 100 warm invocations,
#     peak RSS and AWS calls per event kind of each release binary through a loopback Runtime API
#     against the emulator, beside the Python references in tests/bench/python;
# and writes tests/bench/results.json, results.md and chart.svg.
# Usage: bash tests/bench.sh [function ...]   (default: all five)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bash tests/setup.sh
export WATCHKEEPER_CACHE="${WATCHKEEPER_CACHE:-$ROOT/.cache}"
export PATH="$WATCHKEEPER_CACHE/venv-lambda/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/bench"
mkdir -p "$OUT"

FUNCTIONS=(deploy-notifier secret-rotator health-sweeper snapshot-exporter budget-alerter)
PACKAGES=()
for f in "${FUNCTIONS[@]}"; do PACKAGES+=(-p "$f"); done

echo "== release build, x86_64"
cargo lambda build --release --output-format zip --lambda-dir "$TARGET/lambda/x86_64" "${PACKAGES[@]}"

echo "== release build, arm64"
if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    cargo lambda build --release --arm64 --output-format zip --lambda-dir "$TARGET/lambda/arm64" "${PACKAGES[@]}"
    echo "built with cargo lambda --arm64 (zig)" >"$OUT/arm64.txt"
else
    reason="not built: the aarch64 standard library is not installed (rustup target add aarch64-unknown-linux-gnu failed or was not run)"
    echo "$reason" | tee "$OUT/arm64.txt"
fi

echo "== sizes"
for f in "${FUNCTIONS[@]}"; do
    for arch in x86_64 arm64; do
        zip="$TARGET/lambda/$arch/$f/bootstrap.zip"
        [ -f "$zip" ] && printf '%-18s %-7s zip %8d bytes\n' "$f" "$arch" "$(stat -c %s "$zip")"
    done
done

echo "== warm path (divan)"
cargo bench -p watchkeeper-tests --bench warm 2>&1 | tee "$OUT/warm.txt"

echo "== health-sweeper scale benchmark"
# Its 10,000 targets need more open files than a shell usually allows (it says which it got).
(ulimit -n 65536 2>/dev/null || true; cargo bench -p watchkeeper-tests --bench sweep) 2>&1 | tee "$OUT/sweep.txt"

echo "== functions through a loopback Runtime API, beside the Python references"
cargo run -q -p watchkeeper-tests --bin bench -- "$@"
