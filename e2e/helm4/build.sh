#!/usr/bin/env bash
# Builds Helm 4 (helm.sh/helm/v4/cmd/helm, from the Go module proxy) once and caches it outside the repository.
# Helm 4's --wait is kstatus-based: the e2e tests use it to prove that an AppRelease's health reads right.
# The test bed's own helm (v3, e2e/testbed/versions.env) is untouched. Prints the binary's path on stdout.
set -euo pipefail
HELM4_VERSION="${HELM4_VERSION:-v4.3.1}"
cache_root="${APPRELEASE_CACHE:-$HOME/.cache/apprelease}"
dir="$cache_root/helm-$HELM4_VERSION"
mkdir -p "$cache_root"
exec 9>"$cache_root/.helm4.lock"
flock 9
if [[ ! -x "$dir/helm" ]]; then
  echo "[helm4-build] building helm $HELM4_VERSION (a few minutes when cold)" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION"
  # A private build cache, dropped afterwards: the binary is never rebuilt for the same pin.
  GOFLAGS="-buildvcs=false" CGO_ENABLED=0 GOCACHE="$dir.tmp/go-build" GOBIN="$dir.tmp" \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION"
  rm -rf "$dir.tmp/go-build" "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir/helm"
