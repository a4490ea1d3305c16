#!/usr/bin/env bash
# Builds kustomize (Apache-2.0) into var/bin from the Go module proxy when kubectl is not installed: the
# tests render every kustomization under deploy/ with `kubectl kustomize`, or with this binary. Needs Go
# (on the PATH or in /usr/local/go); without kubectl and Go the manifest tests skip, saying so.
command -v kubectl >/dev/null && exit 0
exec "$(dirname "$0")/go-tool.sh" kustomize sigs.k8s.io/kustomize/kustomize/v5@v5.5.0 "the Kubernetes manifests"
