#!/usr/bin/env bash
# Static security checks of terraform/ and the service image that run offline: checkov with
# --skip-download. checkov's dependencies clash with the project's pins, so it lives in its own
# venv, created here on first use from the pinned infra/checkov-requirements.txt.
#
#   infra/check_terraform.sh [extra checkov args]
#   CHECKOV_VENV=/path   where the venv lives (default: ~/.cache/retailopt/checkov-<hash of the pins>)
#   PYTHON=python3       interpreter that creates the venv
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requirements="$root/infra/checkov-requirements.txt"
pins=$(sha256sum "$requirements" | cut -c1-12)
venv=${CHECKOV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/retailopt/checkov-$pins}

# The marker is written last: an interrupted install is redone, never used half-built.
if [ ! -f "$venv/.installed" ]; then
  echo "check_terraform: creating the checkov venv in $venv" >&2
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -r "$requirements" >"$venv/install.log" 2>&1; then
    cat "$venv/install.log" >&2
    exit 3
  fi
  touch "$venv/.installed"
fi

cd "$root"
exec "$venv/bin/checkov" \
  --directory terraform \
  --directory infra \
  --framework terraform dockerfile \
  --skip-download \
  --quiet --compact \
  "$@"
