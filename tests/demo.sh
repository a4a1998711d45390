#!/usr/bin/env bash
# The demo: set-up, build, then run every function through the Lambda runtime emulator against
# the local AWS emulator, a throwaway PostgreSQL and loopback backends, printing what happened.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tests/setup.sh
echo "[demo] building"
cargo build --workspace --bins --locked
# The binary built above, run as is: `cargo run -p <one package>` would resolve features for that
# package alone and rebuild half the dependency tree.
exec "${CARGO_TARGET_DIR:-$root/target}/debug/demo"
