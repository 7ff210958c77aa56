#!/usr/bin/env bash
# Stops what up.sh started (and only that), newest first, and waits until each process is gone; for the real
# node also its pods, shims, mounts, cgroups, bridge, iptables rules and the sysctls the kubelet changed.
# State (certificates, etcd data, registry storage) stays in .testbed/ unless --purge is given.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tb="${TESTBED_DIR:-$root/.testbed}"
run="$tb/run"

stop() {
  local name="$1" pidfile="$run/$1.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "[testbed] stopping $name (pid $pid)" >&2
    # Each component runs in its own session (setsid), so the group holds any child it spawned.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile" "$run/$1.cmd"
}

if [[ "${1:-}" == "--only" ]]; then
  # Stop one component (tests stop the registry to prove rollbacks do not need it); up.sh restarts it.
  stop "$2"
  exit 0
fi
# The real node first: its pods are stopped through the kubelet while the API server still runs.
# shellcheck source=node.sh
source "$here/node.sh"
node_down
for name in operator dockerd registry-auth registry kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop "$name"
done
rm -f "$tb/env"
if [[ "${1:-}" == "--purge" ]]; then
  rm -rf "$tb"
  echo "[testbed] removed $tb" >&2
fi
