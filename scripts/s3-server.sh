#!/usr/bin/env bash
# Builds gofakes3 (an S3-compatible server, MIT) into var/bin from the Go module proxy, for the tests of the
# evidence store in object storage. Needs Go (on the PATH or in /usr/local/go); without it the tests that
# need the server skip, saying so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/var/bin/gofakes3"
[ -x "$bin" ] && exit 0
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "s3-server.sh: no Go toolchain: the object-storage tests will skip" >&2
  exit 0
fi
mkdir -p "$root/var/bin"
echo "building gofakes3 (S3-compatible server for the tests) into var/bin" >&2
GOBIN="$root/var/bin" GOFLAGS=-mod=mod "$go" install github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0 \
  || echo "s3-server.sh: gofakes3 could not be built: the object-storage tests will skip" >&2
