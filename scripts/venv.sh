#!/usr/bin/env bash
# Creates the project's virtual environment in .venv.
#
# The third-party packages (torch alone is several GB on PyPI) are installed once into a
# shared folder keyed by the hash of requirements.lock, under ${VIGIE_CACHE:-~/.cache/vigie};
# every clone's .venv reuses it through a .pth file and installs only Vigie itself, editable.
# A changed lock gives a new hash and a fresh install; nothing is shared between locks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
cache=${VIGIE_CACHE:-$HOME/.cache/vigie}
hash=$(sha256sum "$root/requirements.lock" | cut -c1-16)
deps="$cache/deps-$hash"
if [ ! -f "$deps/.complete" ]; then
  echo "installing third-party packages into $deps (once per lock; torch is large)" >&2
  rm -rf "$deps"
  mkdir -p "$cache"
  "$python" -m venv "$deps"
  "$deps/bin/pip" install -q --disable-pip-version-check --upgrade pip
  # Seed from the newest complete install of an earlier lock (hard links: no copy, no download); pip then
  # installs only what the new lock changes or adds, and what the new lock no longer names is removed.
  previous=$(ls -dt "$cache"/deps-*/.complete 2>/dev/null | head -n1 || true)
  if [ -n "$previous" ]; then
    from=$("$(dirname "$previous")/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    to=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "seeding from $(dirname "$previous")" >&2
    "$deps/bin/pip" uninstall -q -y --disable-pip-version-check setuptools 2>/dev/null || true
    for item in "$from"/*; do
      [ -e "$to/$(basename "$item")" ] && continue  # the new venv's own pip
      cp -al "$item" "$to/"
    done
  fi
  "$deps/bin/pip" install -q --disable-pip-version-check --no-deps -r "$root/requirements.lock"
  stale=$("$deps/bin/pip" freeze --exclude pip | sed 's/==.*//' | tr '[:upper:]_' '[:lower:]-' |
          grep -vxFf <(sed 's/==.*//' "$root/requirements.lock" | tr '[:upper:]_' '[:lower:]-') || true)
  [ -z "$stale" ] || "$deps/bin/pip" uninstall -q -y $stale
  "$deps/bin/pip" check >&2
  touch "$deps/.complete"
fi
venv="$root/.venv"
site=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -f "$venv/.deps-$hash" ]; then
  rm -rf "$venv"
  # No pip or setuptools of its own: the shared ones (pinned in the lock) come through the .pth.
  "$python" -m venv --without-pip "$venv"
  vsite=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$site')" > "$vsite/_vigie_deps.pth"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$root"
  touch "$venv/.deps-$hash"
fi
