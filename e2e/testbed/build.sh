#!/usr/bin/env bash
# Builds the test bed's binaries from the Go module proxy at the versions pinned in versions.env and caches
# them outside the repository. Prints the bin directory on stdout. A cached build is reused; a changed pin
# gets a new cache directory and is rebuilt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${APPRELEASE_CACHE:-$HOME/.cache/apprelease}/testbed"
k8s_dir="$cache_root/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache_root/etcd-$ETCD_VERSION"
kwok_dir="$cache_root/kwok-$KWOK_VERSION"
helm_dir="$cache_root/helm-$HELM_VERSION"
containerd_dir="$cache_root/containerd-$CONTAINERD_VERSION"
cosign_dir="$cache_root/cosign-$COSIGN_VERSION"
bin="$cache_root/bin-k8s$KUBERNETES_VERSION-etcd$ETCD_VERSION-kwok$KWOK_VERSION-helm$HELM_VERSION"
bin+="-containerd$CONTAINERD_VERSION"

log() { echo "[testbed-build] $*" >&2; }
export GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0
# A private build cache (about 5 GB for Kubernetes), dropped once the binaries exist: they are never rebuilt
# for the same pins, and the user's own Go build cache stays untouched.
export GOCACHE="${APPRELEASE_GOCACHE:-$cache_root/go-build}"
built=false

build_kubernetes() {
  [[ -f "$k8s_dir/.complete" && -x "$k8s_dir/bin/kubelet" ]] && return 0
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubelet $KUBERNETES_VERSION (slow when cold)"
  rm -rf "$k8s_dir" && mkdir -p "$k8s_dir/src" "$k8s_dir/bin"
  local gomod staging_version
  gomod="$(cd "$k8s_dir/src" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with local paths; as a
  # dependency those replaces are ignored, so each staging module is replaced with its published v0.X.Y.
  # The kubelet's pause image source (build/pause/linux/pause.c) is kept for the real node's sandbox image.
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  {
    echo "module apprelease.dev/testbed/kubernetes"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" \
      | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$k8s_dir/src/go.mod"
  cat > "$k8s_dir/src/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  local ver_pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $ver_pkg.gitVersion=$KUBERNETES_VERSION -X $ver_pkg.gitTreeState=clean"
  ldflags+=" -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
  (cd "$k8s_dir/src" && go mod tidy -e >/dev/null 2>&1 || go mod tidy \
    && go build -tags tools -ldflags "$ldflags" -o "$k8s_dir/bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet)
  local k8s_src
  k8s_src="$(cd "$k8s_dir/src" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)"
  cp "$k8s_src/build/pause/linux/pause.c" "$k8s_dir/bin/pause.c"
  touch "$k8s_dir/.complete"
  built=true
}

build_etcd() {
  [[ -f "$etcd_dir/.complete" ]] && return 0
  log "building etcd $ETCD_VERSION"
  rm -rf "$etcd_dir" && mkdir -p "$etcd_dir/src" "$etcd_dir/bin"
  # etcd's server module has replace directives, so `go install` refuses it; a tiny main depending on it works.
  cat > "$etcd_dir/src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$etcd_dir/src" && go mod init apprelease.dev/testbed/etcd >/dev/null 2>&1 \
    && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 \
    && go mod tidy >/dev/null 2>&1 \
    && go build -ldflags "-s -w" -o "$etcd_dir/bin/etcd" .)
  touch "$etcd_dir/.complete"
  built=true
}

go_install() { # dir package version binary
  local dir="$1" pkg="$2" version="$3" name="$4"
  [[ -f "$dir/.complete" ]] && return 0
  log "building $name $version"
  rm -rf "$dir" && mkdir -p "$dir/bin"
  GOBIN="$dir/bin" go install -ldflags "-s -w" "$pkg@$version"
  touch "$dir/.complete"
  built=true
}

build_kubernetes
build_etcd
go_install "$kwok_dir" sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" kwok
# kwok changes node and pod status only through Stages; take the ones kwokctl uses from the same release:
# nodes become Ready and renew their Leases, pods become Running and Ready.
if [[ ! -s "$kwok_dir/stages.yaml" ]]; then
  kwok_src="$(cd /tmp && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$kwok_src/kustomize/stage/$f"
  done > "$kwok_dir/stages.yaml.tmp" && mv "$kwok_dir/stages.yaml.tmp" "$kwok_dir/stages.yaml"
fi
go_install "$helm_dir" helm.sh/helm/v3/cmd/helm "$HELM_VERSION" helm

build_containerd() {
  [[ -f "$containerd_dir/.complete" ]] && return 0
  log "building containerd $CONTAINERD_VERSION (the real node's runtime; Debian's 1.6 is too old for the kubelet)"
  rm -rf "$containerd_dir" && mkdir -p "$containerd_dir/src" "$containerd_dir/bin"
  (cd "$containerd_dir/src" && go mod init apprelease.dev/testbed/containerd >/dev/null 2>&1 \
    && go mod download -json "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" >/dev/null)
  local src
  src="$(cd "$containerd_dir/src" && go mod download -json "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  # Built inside the module's own source (its go.mod, go.sum and replaces apply); the module cache is read-only.
  local ver_pkg=github.com/containerd/containerd/v2/version
  (cd "$src" && GOFLAGS="$GOFLAGS -modcacherw" go build -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X $ver_pkg.Version=$CONTAINERD_VERSION" -o "$containerd_dir/bin/" \
    ./cmd/containerd ./cmd/containerd-shim-runc-v2 ./cmd/ctr)
  touch "$containerd_dir/.complete"
  built=true
}
build_containerd
# About 9 minutes cold on 2 cores; cached like the rest (the bin directory's name keeps its old form: the
# running test bed's command lines do not change when cosign is added).
go_install "$cosign_dir" github.com/sigstore/cosign/v3/cmd/cosign "$COSIGN_VERSION" cosign

if [[ "$built" == true ]]; then
  go clean -cache
fi

mkdir -p "$bin"
for f in "$k8s_dir"/bin/* "$etcd_dir/bin/etcd" "$kwok_dir/bin/kwok" "$kwok_dir/stages.yaml" "$helm_dir/bin/helm" \
         "$containerd_dir"/bin/* "$cosign_dir/bin/cosign"; do
  ln -sf "$f" "$bin/$(basename "$f")"
done
echo "$bin"
