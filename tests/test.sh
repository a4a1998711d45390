#!/usr/bin/env bash
# The test command: set-up, then every test (unit, integration against the emulator and the real
# databases, end to end through the Lambda runtime emulator).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tests/setup.sh
echo "[test] checkov over infra/ (offline: no Terraform, no AWS, no update check)"
CKV_SKIP_PACKAGE_UPDATE_CHECK=true "${WATCHKEEPER_CACHE:-$root/.cache}/venv-checkov/bin/checkov" \
  --directory infra --framework terraform --quiet --compact --skip-download --download-external-modules false
echo "[test] building every function binary (the end-to-end tests run them)"
cargo build --workspace --bins --locked
echo "[test] building the benchmarks (run by tests/bench.sh, compiled here so they cannot rot)"
cargo test --workspace --benches --no-run --locked
echo "[test] running all tests"
cargo test --workspace --locked --no-fail-fast
