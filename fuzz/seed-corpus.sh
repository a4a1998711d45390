#!/usr/bin/env bash
# Seeds the fuzz corpus with the real fixtures: each event file under every entry point's
# selector byte, plus secret values and Budgets texts. Run from the repository root.
set -euo pipefail
corpus=fuzz/corpus/entry_points
mkdir -p "$corpus"
n=0
for file in events/*.json; do
  for selector in 0 1 3 4 5 9; do
    { printf "\\x$(printf %02x "$selector")"; cat "$file"; } > "$corpus/seed-$n"; n=$((n + 1))
  done
done
python3 - "$corpus" <<'PY'
import json, sys, pathlib
corpus = pathlib.Path(sys.argv[1])
seeds = {
    2: '{"key": "local-ci-signing-key-0123456789abcdef-not-secret"}',
    6: json.dumps({"engine": "postgres", "host": "db", "port": 5432, "username": "app",
                   "password": "p", "masterarn": "arn:aws:secretsmanager:us-east-1:1:secret:m"}),
    7: "ALLOWED_NETWORKS=10.0.0.0/8\nSTATIC_TARGETS=a=10.0.0.1:8080\nPORT=8080\nHEALTHY_CODES=200,302",
}
for selector, text in seeds.items():
    (corpus / f"seed-extra-{selector}").write_bytes(bytes([selector]) + text.encode())
for path in pathlib.Path("events").glob("budgets-*.json"):
    message = json.loads(path.read_text())["Records"][0]["Sns"]["Message"]
    (corpus / f"seed-text-{path.stem}").write_bytes(bytes([3]) + message.encode())
PY
echo "seeded $(ls "$corpus" | wc -l) inputs in $corpus"
