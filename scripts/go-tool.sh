#!/usr/bin/env bash
# Usage: scripts/go-tool.sh NAME MODULE/PATH@VERSION WHAT
# Builds the Go command NAME into var/bin from the Go module proxy (once), for the tests that need it.
# Needs Go (on the PATH or in /usr/local/go); without it, or when the build fails, it says that the tests
# needing WHAT will skip, and exits 0.
set -euo pipefail
name=$1 module=$2 what=$3
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$root/var/bin/$name" ] && exit 0
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "go-tool.sh: no Go toolchain: the tests of $what will skip" >&2
  exit 0
fi
mkdir -p "$root/var/bin"
echo "building $name (for the tests of $what) into var/bin" >&2
GOBIN="$root/var/bin" GOFLAGS=-mod=mod "$go" install "$module" \
  || echo "go-tool.sh: $name could not be built: the tests of $what will skip" >&2
