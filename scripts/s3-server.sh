#!/usr/bin/env bash
# Builds gofakes3 (an S3-compatible server, MIT) into var/bin from the Go module proxy, for the tests of the
# evidence store in object storage. Needs Go (on the PATH or in /usr/local/go); without it the tests that
# need the server skip, saying so.
exec "$(dirname "$0")/go-tool.sh" gofakes3 github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0 \
  "the evidence store in object storage"
