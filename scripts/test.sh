#!/usr/bin/env bash
# Runs every test of the project. Installs first the system tools that the interop tests drive
# (listed in scripts/apt-packages.txt and scripts/pip-packages.txt) when they are missing, and
# fails loudly when one cannot be had: no test is ever skipped for want of a tool.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
while read -r pkg; do
  [ -z "$pkg" ] && continue
  case "$pkg" in \#*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done < <(sort -u scripts/apt-packages.txt)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || { echo "test.sh: FAILED to install ${missing[*]}; the tests need them" >&2; exit 1; }
fi

# Node.js and npm (for dash.js in Chromium), from Debian when the machine has none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test.sh: installing Debian packages: nodejs npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm \
    || { echo "test.sh: FAILED to install nodejs and npm; the browser tests need them" >&2; exit 1; }
fi

# Python tools (moto_server for the S3 test) go into a virtual environment of the build folder,
# so that a system Python that refuses global installs (PEP 668) is left alone.
pips=$(grep -v '^\s*\(#\|$\)' scripts/pip-packages.txt | sort -u || true)
if [ -n "$pips" ]; then
  venv=target/test-venv
  if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
      python3 -m venv "$venv"
    } || { echo "test.sh: FAILED to create a Python virtual environment" >&2; exit 1; }
  fi
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $pips \
    || { echo "test.sh: FAILED to install Python packages: $pips" >&2; exit 1; }
  PATH="$PWD/$venv/bin:$PATH"
  export PATH
fi

if [ -f tests/js/package.json ]; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error) \
    || { echo "test.sh: FAILED to install the npm packages of tests/js" >&2; exit 1; }
fi

# A clean checkout gains nothing from incremental compilation, and its cache doubles the disk used.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
echo "test.sh: free disk before the build: $(df -h --output=avail . | tail -1 | tr -d ' ')"
cargo test --workspace --locked "$@"
