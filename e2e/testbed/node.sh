# shellcheck shell=bash
# The test bed's real node, testbed-real-0: containerd (its own socket, root and state dirs; runc; CNI bridge +
# host-local + portmap + firewall) and a kubelet joined to the test bed's API server. Sourced by up.sh (node_up,
# which uses up.sh's start/wait_for/cert/log helpers) and by down.sh (node_down, self-contained).
#
# Host facts this works around (measured on a cgroup v1 Debian host whose capability bounding set lacks
# CAP_SYS_RESOURCE): runc cannot set a negative oom_score_adj (restrict_oom_score_adj + kubelet oomScoreAdj 0);
# nothing can be pulled from the internet (the pause image is built from the kubelet's own pause.c); Docker sets
# the FORWARD policy to DROP (CNI firewall plugin); the kubelet reads $HOME/.docker/config.json and ./config.json
# as node-wide pull credentials (it runs with an empty HOME and working directory, so only imagePullSecrets count).

NODE_NAME=testbed-real-0
NODE_LABEL=apprelease.dev/testbed-node=real
NODE_TAINT_KEY=apprelease.dev/real-node
POD_SUBNET=10.88.0.0/16
CNI_BRIDGE=apprelease0
CNI_NETWORK=apprelease-testbed
PAUSE_TAG=3.10-apprelease
# A comment on every iptables rule the test bed adds itself, so testbed-down removes exactly those.
IPT_COMMENT=apprelease-testbed

# The node's directories, by their real path: mount points in /proc/self/mountinfo never show symlinks.
node_dirs() {
  node_root="$(realpath -m "$tb")/node"
  ctrd_sock="$node_root/containerd/containerd.sock"
}

# The host's address that pods and the kubelet use for the API server and the registries (never loopback).
host_ip() {
  if [[ -n "${TESTBED_HOST_IP:-}" ]]; then echo "$TESTBED_HOST_IP"; return; fi
  ip -4 -o route get 192.0.2.1 2>/dev/null | sed -nE 's/.* src ([0-9.]+).*/\1/p' | head -n 1
}

# Ports the test bed serves on every address (so that pods reach them at HOST_IP): only loopback and the pod
# network may connect; the rest of the LAN is dropped.
guard_ports() {
  local port
  for port in "$@"; do
    iptables -C INPUT -p tcp --dport "$port" ! -i lo ! -s "$POD_SUBNET" -m comment --comment "$IPT_COMMENT" \
      -j DROP 2>/dev/null \
      || iptables -I INPUT -p tcp --dport "$port" ! -i lo ! -s "$POD_SUBNET" -m comment --comment "$IPT_COMMENT" \
        -j DROP
  done
}

# Sysctls the kubelet or the CNI bridge change; saved once, before the first change, restored by node_down.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward)

pause_image() { echo "$REGISTRY/testbed/pause:$PAUSE_TAG"; }

build_pause_image() {
  local image; image="$(pause_image)"
  # -s without -S: a 404 here only means the image is not built yet, not an error to print.
  curl -fs -o /dev/null -I "http://$REGISTRY/v2/testbed/pause/manifests/$PAUSE_TAG" && return 0
  log "building the pod sandbox image $image from the kubelet's pause.c (static gcc build, FROM scratch)"
  command -v gcc >/dev/null || die "gcc is missing; run 'make deps' (apt: gcc libc6-dev)"
  local ctx; ctx="$(mktemp -d)"
  gcc -Os -static -DVERSION="$PAUSE_TAG" -o "$ctx/pause" "$bin/pause.c" || die "gcc -static pause.c failed"
  strip "$ctx/pause" 2>/dev/null || true
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$ctx/Dockerfile"
  docker build -q -t "$image" "$ctx" >/dev/null
  docker push -q "$image" >/dev/null
  rm -rf "$ctx"
}

write_containerd_config() {
  local certs="$node_root/containerd/certs.d" addr
  mkdir -p "$node_root/containerd/root" "$node_root/containerd/state" "$node_root/cni/net.d" "$certs"
  # Plain http for the open registry, the test bed's CA for the TLS one; under both of their names.
  for addr in "$REGISTRY" "$HOST_IP:${REGISTRY##*:}"; do
    mkdir -p "$certs/$addr"
    printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
      "$addr" "$addr" > "$certs/$addr/hosts.toml"
  done
  for addr in "$REGISTRY_AUTH" "$HOST_IP:${REGISTRY_AUTH##*:}"; do
    mkdir -p "$certs/$addr"
    printf 'server = "https://%s"\n\n[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' \
      "$addr" "$addr" "$pki/ca.crt" > "$certs/$addr/hosts.toml"
  done
  cat > "$node_root/cni/net.d/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$node_root/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
EOF
  # Every path of its own (the host may run another containerd, e.g. Docker's), no host drop-ins, no NRI.
  cat > "$node_root/containerd/config.toml" <<EOF
version = 4
root = "$node_root/containerd/root"
state = "$node_root/containerd/state"
imports = []

[plugins."io.containerd.server.v1.grpc"]
  address = "$ctrd_sock"

[plugins."io.containerd.server.v1.ttrpc"]
  address = "$ctrd_sock.ttrpc"

[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.internal.v1.opt"]
  path = "$node_root/containerd/opt"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "$(pause_image)"

[plugins."io.containerd.cri.v1.images".registry]
  config_path = "$certs"

[plugins."io.containerd.transfer.v1.local"]
  config_path = "$certs"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "$node_root/cni/net.d"
  max_conf_num = 1

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  BinaryName = "$(command -v runc)"
  SystemdCgroup = false
EOF
}

write_kubelet_config() {
  cert "node-$NODE_NAME" "/O=system:nodes/CN=system:node:$NODE_NAME" "" clientAuth
  cert kubelet-serving "/CN=$NODE_NAME" "IP:$HOST_IP,DNS:$NODE_NAME" serverAuth
  kubeconfig "$tb/kubelet.kubeconfig" "node-$NODE_NAME"
  mkdir -p "$node_root/kubelet" "$node_root/home" "$node_root/pod-logs" "$node_root/volume-plugins"
  cat > "$node_root/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$ctrd_sock
# cgroup v1 host, no systemd as init: cgroupfs, and cgroup v1 explicitly allowed.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
# No CAP_SYS_RESOURCE in the bounding set: a negative oom_score_adj cannot be set.
oomScoreAdj: 0
# Else the kubelet adds a KUBE-FIREWALL drop rule to the host.
makeIPTablesUtilChains: false
address: $HOST_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
# Only the API server (a client certificate of the test bed's CA, authorized by SubjectAccessReview) may use
# the kubelet's API: logs, exec, port-forward.
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
registerWithTaints:
  - {key: $NODE_TAINT_KEY, value: "true", effect: NoSchedule}
podLogsDir: $node_root/pod-logs
volumePluginDir: $node_root/volume-plugins
# The host's disk is shared with builds: evict late, and never for image space alone.
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
maxPods: 30
EOF
}

node_up() {
  node_dirs
  HOST_IP="$(host_ip)"
  [[ -n "$HOST_IP" && "$HOST_IP" != 127.* ]] \
    || die "no non-loopback IPv4 address for the real node (set TESTBED_HOST_IP)"
  need runc runc
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/firewall ]] \
    || die "CNI plugins are missing in /usr/lib/cni; run 'make deps' (apt: containernetworking-plugins)"
  need iptables iptables
  build_pause_image
  write_containerd_config
  write_kubelet_config

  local name
  if [[ ! -f "$node_root/sysctl.saved" ]]; then
    for name in "${SYSCTLS[@]}"; do echo "$name=$(sysctl -n "$name")"; done > "$node_root/sysctl.saved"
  fi
  modprobe br_netfilter 2>/dev/null || true

  start containerd env PATH="$bin:$PATH" containerd --config "$node_root/containerd/config.toml"
  wait_for containerd 30 ctr --address "$ctrd_sock" version
  start kubelet env -C "$node_root/home" HOME="$node_root/home" kubelet --config "$node_root/kubelet-config.yaml" \
    --kubeconfig "$tb/kubelet.kubeconfig" --root-dir "$node_root/kubelet" --cert-dir "$node_root/kubelet/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$HOST_IP" --node-labels "$NODE_LABEL" --v=1
  wait_for kubelet 90 node_ready
  # A node left cordoned by an earlier testbed-down takes pods again.
  kubectl uncordon "$NODE_NAME" >/dev/null
}

node_ready() {
  [[ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

# --- down -------------------------------------------------------------------------------------------------
# Every process in the kubelet's pod cgroups (cgroupfs driver: /kubepods in each hierarchy).
pod_pids() {
  local d
  # (if, not &&: a false test must not be the loop's status, which pipefail and errexit would turn into an exit)
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    if [[ -d "$d" ]]; then find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done | sort -u
}

# Shims of our containerd (they outlive it by design), found by the socket address on their command line.
shim_pids() {
  pgrep -f -- "containerd-shim-runc-v2 .*-address $ctrd_sock( |$)" || true
}

node_down() {
  node_dirs
  local pids _
  if [[ -f "$run/kubelet.pid" ]] && kill -0 "$(cat "$run/kubelet.pid")" 2>/dev/null && [[ -f "$tb/kubeconfig" ]]; then
    # Pods are stopped through the kubelet while it runs, so CNI DEL removes their addresses and firewall rules;
    # cordoned first, so their replacements wait for the next testbed-up (which uncordons).
    if kubectl --kubeconfig "$tb/kubeconfig" --request-timeout=5s cordon "$NODE_NAME" >/dev/null 2>&1; then
      kubectl --kubeconfig "$tb/kubeconfig" --request-timeout=10s delete pods -A \
        --field-selector "spec.nodeName=$NODE_NAME" --grace-period=1 --wait=false >/dev/null 2>&1 || true
      for _ in $(seq 1 40); do
        [[ -z "$(pod_pids)" ]] && break
        sleep 0.5
      done
    fi
  fi
  stop kubelet
  # Whatever is left (a kubelet that was already gone, a pod that did not stop) is killed outright.
  for _ in $(seq 1 20); do
    pids="$(pod_pids)"
    [[ -z "$pids" ]] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.25
  done
  stop containerd
  pids="$(shim_pids)"
  if [[ -n "$pids" ]]; then
    echo "[testbed] stopping containerd shims: $pids" >&2
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
  # Mounts under the node's directories (sandbox netns, container rootfs, volumes, the kubelet's own bind
  # mount of its root dir), deepest first.
  local m
  for m in $(awk -v d="$node_root/" 'index($5, d) == 1 || $5 == substr(d, 1, length(d) - 1) {print $5}' \
               /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  # Empty pod cgroups.
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    if [[ -d "$d" ]]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  # The network: bridge, firewall chains of our pods, the port guards.
  ip link del "$CNI_BRIDGE" 2>/dev/null || true
  remove_iptables
  # The kubelet's links to container logs.
  if [[ -d /var/log/containers ]]; then
    find /var/log/containers -maxdepth 1 -lname "$node_root/*" -delete 2>/dev/null || true
  fi
  if [[ -f "$node_root/sysctl.saved" ]]; then
    local line
    while read -r line; do sysctl -qw "$line" >/dev/null 2>&1 || true; done < "$node_root/sysctl.saved"
    rm -f "$node_root/sysctl.saved"
  fi
  # Run-time state only: images (containerd root) and certificates stay for a fast next start.
  rm -rf --one-file-system "$node_root/containerd/state" "$node_root/kubelet" "$node_root/cni/ipam" \
    "$node_root/pod-logs" 2>/dev/null || true
  return 0
}

remove_iptables() {
  local table rule
  for table in filter nat; do
    iptables -t "$table" -S 2>/dev/null | grep -F -- "--comment $IPT_COMMENT" | while read -r rule; do
      # -S quotes what has spaces (comments): eval splits it back as iptables printed it.
      eval "iptables -t $table ${rule/-A /-D }" 2>/dev/null || true
    done || true  # (grep finding nothing fails the pipeline: not an error here)
  done
  # The CNI firewall plugin's chains: per-pod rules for our subnet, then the chains once nothing else uses them.
  local prefix="${POD_SUBNET%.*.*}."
  iptables -S CNI-FORWARD 2>/dev/null | grep -F -- " $prefix" | while read -r rule; do
    eval "iptables ${rule/-A /-D }" 2>/dev/null || true
  done || true
  if [[ "$(iptables -S CNI-FORWARD 2>/dev/null | grep -vc -- '-j CNI-ADMIN$')" -le 1 ]] \
     && [[ "$(iptables -S CNI-ADMIN 2>/dev/null | wc -l)" -le 1 ]]; then
    while iptables -D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD 2>/dev/null; do :; done
    iptables -F CNI-FORWARD 2>/dev/null && iptables -X CNI-FORWARD 2>/dev/null || true
    iptables -F CNI-ADMIN 2>/dev/null && iptables -X CNI-ADMIN 2>/dev/null || true
  fi
}
