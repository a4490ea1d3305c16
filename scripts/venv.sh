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
  "$deps/bin/pip" install -q --disable-pip-version-check --no-deps -r "$root/requirements.lock"
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
