#!/usr/bin/env bash
# Builds the kstatus tool (main.go, against sigs.k8s.io/cli-utils/pkg/kstatus from the Go module proxy) once and
# caches it outside the repository, keyed by the sources. Prints the binary's path on stdout. Concurrent callers
# wait for one build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${APPRELEASE_CACHE:-$HOME/.cache/apprelease}"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-12)"
dir="$cache_root/kstatus-$key"
mkdir -p "$cache_root"
exec 9>"$cache_root/.kstatus.lock"
flock 9
if [[ ! -x "$dir/kstatus" ]]; then
  echo "[kstatus-build] building the kstatus tool ($key)" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  # A private build cache, dropped afterwards: the binary is never rebuilt for the same sources.
  (cd "$here" && GOFLAGS="-buildvcs=false -mod=readonly" CGO_ENABLED=0 GOCACHE="$dir.tmp/go-build" \
    go build -trimpath -ldflags "-s -w" -o "$dir.tmp/kstatus" .)
  rm -rf "$dir.tmp/go-build" "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir/kstatus"
