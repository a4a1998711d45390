#!/usr/bin/env bash
# Installs what the tests and the demo need, each piece only if it is missing:
#   - Debian packages: PostgreSQL 15 (server + psql), MariaDB (server + client), curl and openssl
#     (the documented CI client), via apt-get;
#   - Python tools, each in its own virtual env under the cache folder (WATCHKEEPER_CACHE, default
#     .cache/ in the workspace): moto[server] (the AWS emulator), cargo-lambda (the Lambda
#     runtime API emulator) and checkov (static checks of infra/; it pins a boto3 that conflicts
#     with moto's, hence its own venv), pinned.
# Safe to run again; prints one line per piece.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${WATCHKEEPER_CACHE:-$root/.cache}"
mkdir -p "$cache"

MOTO_VERSION="5.2.5"
CARGO_LAMBDA_VERSION="1.9.2"
CHECKOV_VERSION="3.3.30"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
command -v python3 >/dev/null || die "python3 not found: install Python 3 (apt-get install -y python3 python3-venv)"

# --- Debian packages -------------------------------------------------------------------------
missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v psql >/dev/null || missing+=(postgresql-client-15)
{ [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null; } || missing+=(mariadb-server)
command -v mariadb >/dev/null || missing+=(mariadb-client)
# The documented CI client (deploy-notifier's README recipe) is run as written by a test.
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    die "missing Debian packages: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}"
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start system-wide servers: the tests start their own.
  policy=/usr/sbin/policy-rc.d
  created_policy=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$created_policy" ] && rm -f "$policy"
else
  say "Debian packages: present (postgresql-15, mariadb, curl, openssl)"
fi
# The server packages create these users; the harness runs the servers as them when root.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "user postgres missing: reinstall postgresql-15"
  id mysql >/dev/null 2>&1 || die "user mysql missing: reinstall mariadb-server"
fi

# --- Python tools, one venv each ---------------------------------------------------------------
venv_tool() { # name, binary, pip spec
  local venv="$cache/$1" bin="$2" spec="$3"
  if [ -x "$venv/bin/$bin" ] && [ "$(cat "$venv/.spec" 2>/dev/null)" = "$spec" ]; then
    say "$spec: present"
    return
  fi
  say "installing $spec into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$spec" || die "pip install $spec failed"
  echo "$spec" > "$venv/.spec"
}
venv_tool venv-moto moto_server "moto[server]==$MOTO_VERSION"
venv_tool venv-lambda cargo-lambda "cargo-lambda==$CARGO_LAMBDA_VERSION"
venv_tool venv-checkov checkov "checkov==$CHECKOV_VERSION"
say "done"
