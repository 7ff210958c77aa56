#!/usr/bin/env bash
# Starts the local test bed: etcd, kube-apiserver (Node + RBAC), kube-controller-manager, kube-scheduler, kwok
# with fake nodes, two distribution registries (plain http; TLS + Basic auth), a Docker engine when none runs,
# and one real node (containerd + kubelet, see node.sh).
# Idempotent: what already runs with the same command line is left alone; a component whose command line changed
# (a new version of this script) is restarted. Writes .testbed/env for tests, the Makefile and users.
set -euo pipefail
# The components must not inherit the caller's descriptors: after `flock LOCK e2e/testbed/up.sh` they would
# hold the test bed's lock for as long as they run. (255 is bash's own descriptor for this script.)
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  if (( fd > 2 && fd < 255 )); then eval "exec $fd>&-" 2>/dev/null || true; fi
done
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# By its real path: command lines (compared to decide on restarts) are then the same from every checkout that
# shares one test bed through a symlink.
mkdir -p "${TESTBED_DIR:-$root/.testbed}/"
tb="$(realpath "${TESTBED_DIR:-$root/.testbed}")"
run="$tb/run" logs="$tb/logs" pki="$tb/pki"
mkdir -p "$run" "$logs" "$pki"

API_PORT="${TESTBED_API_PORT:-6443}"
ETCD_PORT="${TESTBED_ETCD_PORT:-2379}"
REGISTRY="127.0.0.1:${TESTBED_REGISTRY_PORT:-5000}"
REGISTRY_AUTH="127.0.0.1:${TESTBED_REGISTRY_AUTH_PORT:-5443}"
REGISTRY_USER=apprelease
BASE_IMAGE=apprelease-testbed/busybox:1

log() { echo "[testbed] $*" >&2; }
die() { echo "[testbed] ERROR: $*" >&2; exit 1; }

need() { command -v "$1" >/dev/null || die "$1 is missing; run 'make deps' (apt: $2)"; }
need docker-registry docker-registry
need dockerd docker.io
need skopeo skopeo
need htpasswd apache2-utils
need openssl openssl
need busybox busybox-static
need kubectl kubectl
# shellcheck source=node.sh
source "$here/node.sh"
HOST_IP="$(host_ip)"
[[ -n "$HOST_IP" && "$HOST_IP" != 127.* ]] || die "no non-loopback IPv4 address for the real node (set TESTBED_HOST_IP)"
need iptables iptables
guard_ports "$API_PORT" "${REGISTRY##*:}" "${REGISTRY_AUTH##*:}"

bin="$("$here/build.sh")"
export PATH="$bin:$PATH"

started_any=false
alive() { [[ -f "$run/$1.pid" ]] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start NAME CMD...: runs CMD in its own session, logs to logs/NAME.log, records the pid and the command line.
start() {
  local name="$1"; shift
  # The command line and the content of the configuration files it names (a changed registry or kubelet
  # config restarts that component too).
  local cmd arg; cmd="$(printf '%q ' "$@")"
  for arg in "$@"; do
    [[ "$arg" == *.y*ml || "$arg" == *.toml ]] && [[ -f "$arg" ]] && cmd+=" $(md5sum < "$arg" | cut -c1-32)"
  done
  if alive "$name"; then
    if [[ "$(cat "$run/$name.cmd" 2>/dev/null)" == "$cmd" ]]; then
      log "$name already running (pid $(cat "$run/$name.pid"))"; return 0
    fi
    log "$name runs with another command line: restarting it"
    "$here/down.sh" --only "$name"
  fi
  log "starting $name"
  started_any=true
  setsid "$@" >>"$logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$run/$name.pid"
  echo "$cmd" > "$run/$name.cmd"
}

wait_for() { # NAME TIMEOUT CMD...
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then tail -n 30 "$logs/$name.log" >&2 || true; die "$name exited; see $logs/$name.log"; fi
    (( SECONDS < deadline )) || { tail -n 30 "$logs/$name.log" >&2 || true; die "$name not ready after ${timeout}s"; }
    sleep 0.5
  done
}

# --- certificates and keys (made once; kept across restarts so kubeconfigs stay valid) -------------------
ssl() { openssl "$@" >/dev/null 2>&1; }
cert() { # NAME SUBJECT SAN|"" EXT(serverAuth|clientAuth)
  local name="$1" subj="$2" san="$3" usage="$4"
  # A certificate made for another host address (a copied .testbed, a new DHCP lease) is made again.
  if [[ -f "$pki/$name.crt" && "$san" == *"IP:$HOST_IP"* ]] \
     && ! openssl x509 -in "$pki/$name.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$HOST_IP\b"; then
    rm -f "$pki/$name.crt"
  fi
  [[ -f "$pki/$name.crt" ]] && return 0
  ssl genrsa -out "$pki/$name.key" 2048
  ssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n "$san" ]] && echo "subjectAltName=$san"
  } > "$pki/$name.ext"
  ssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
}
if [[ ! -f "$pki/ca.crt" ]]; then
  log "creating certificates in $pki"
  ssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 \
    -subj "/CN=apprelease-testbed-ca"
  ssl genrsa -out "$pki/sa.key" 2048
  ssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
fi
# The API server and the registries are reached by pods of the real node at the host's address.
cert apiserver "/CN=kube-apiserver" \
  "IP:127.0.0.1,IP:$HOST_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
  serverAuth
cert admin "/O=system:masters/CN=testbed-admin" "" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" "" clientAuth
cert scheduler "/CN=system:kube-scheduler" "" clientAuth
# The API server's client certificate for kubelets (logs, exec, port-forward): kubeadm's choice of group.
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "" clientAuth
cert registry "/CN=apprelease-testbed-registry" "IP:127.0.0.1,IP:$HOST_IP,DNS:localhost" serverAuth

kubeconfig() { # FILE USER
  local file="$1" user="$2"
  [[ -f "$file" ]] && return 0
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $pki/$user.crt
    client-key: $pki/$user.key
contexts:
- name: testbed
  context: {cluster: testbed, user: $user}
current-context: testbed
EOF
}
kubeconfig "$tb/kubeconfig" admin
kubeconfig "$tb/controller-manager.kubeconfig" controller-manager
kubeconfig "$tb/scheduler.kubeconfig" scheduler
export KUBECONFIG="$tb/kubeconfig"

# --- control plane -------------------------------------------------------------------------------------
start etcd etcd --name testbed --data-dir "$tb/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster testbed=http://127.0.0.1:2380 --unsafe-no-fsync --quota-backend-bytes=2147483648
wait_for etcd 60 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

# Bound to every address (pods reach it at HOST_IP; guard_ports drops the LAN). Node authorizer and
# NodeRestriction for the real node's kubelet (system:node:testbed-real-0); a client certificate to reach it.
# ShardedListAndWatch (alpha, off by default): the operator's shardRange mode (APPRELEASE_SHARD_RANGE) needs the
# server to honour `shardSelector`; with the gate off it is silently ignored (e2e/test_shards.py).
start kube-apiserver kube-apiserver \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" --bind-address 0.0.0.0 --advertise-address 127.0.0.1 \
  --secure-port "$API_PORT" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC --anonymous-auth=false \
  --enable-admission-plugins NodeRestriction \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP,Hostname \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true --profiling=false \
  --endpoint-reconciler-type none --feature-gates ShardedListAndWatch=true
wait_for kube-apiserver 120 kubectl get --raw /readyz

start kube-controller-manager kube-controller-manager \
  --kubeconfig "$tb/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$tb/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$tb/controller-manager.kubeconfig" \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port 10257 --profiling=false \
  --controllers '*,-node-ipam-controller'
start kube-scheduler kube-scheduler \
  --kubeconfig "$tb/scheduler.kubeconfig" \
  --authentication-kubeconfig "$tb/scheduler.kubeconfig" \
  --authorization-kubeconfig "$tb/scheduler.kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259 --profiling=false
# kwok chaos stages (e2e/testbed/kwok-chaos.yaml: pods that tests make fail), copied into the test bed so that
# every checkout sharing it starts kwok with the same command line; start() restarts kwok when they change.
chaos="$tb/kwok-chaos.yaml"
cmp -s "$here/kwok-chaos.yaml" "$chaos" || cp "$here/kwok-chaos.yaml" "$chaos"
start kwok kwok --kubeconfig "$tb/kubeconfig" --config "$bin/stages.yaml" --config "$chaos" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds=40 --cidr=10.244.0.0/16 --node-ip=10.0.0.1 \
  --server-address 127.0.0.1:10247

for i in 0 1; do
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {node.alpha.kubernetes.io/ttl: "0", kwok.x-k8s.io/node: fake}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
done
nodes_ready() {
  [[ "$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
    | grep -c True)" -ge 2 ]]
}
wait_for kwok 60 nodes_ready
wait_for kube-controller-manager 60 kubectl get serviceaccount default -n default
if [[ "$started_any" == true ]]; then
  # After a (re)start, the controllers may still hold stale node state (old leases, not-ready taints) and
  # back off; a canary rollout proves Deployment -> ReplicaSet -> scheduled -> Ready works before tests run.
  kubectl create namespace testbed-canary >/dev/null 2>&1 || true
  wait_for kube-controller-manager 30 kubectl get serviceaccount default -n testbed-canary
  kubectl -n testbed-canary delete deployment canary --ignore-not-found >/dev/null
  kubectl -n testbed-canary create deployment canary --image=testbed.invalid/canary:1 --replicas=2 >/dev/null
  if ! kubectl -n testbed-canary rollout status deployment/canary --timeout=180s >/dev/null; then
    die "a canary Deployment did not become available; see $logs/"
  fi
  kubectl -n testbed-canary delete deployment canary --wait=false >/dev/null
fi

# --- registries ----------------------------------------------------------------------------------------
password_file="$tb/registry-auth.password"
[[ -f "$password_file" ]] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$password_file"
REGISTRY_PASSWORD="$(cat "$password_file")"
htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" > "$tb/registry-auth.htpasswd" 2>/dev/null

registry_config() { # NAME ADDR EXTRA
  mkdir -p "$tb/registry-$1"
  cat > "$tb/registry-$1.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $tb/registry-$1}
  delete: {enabled: true}
http:
  addr: $2
$3
EOF
}
# On every address, like the API server: pods of the real node (the operator's) resolve images at HOST_IP.
registry_config plain "0.0.0.0:${REGISTRY##*:}" ""
registry_config auth "0.0.0.0:${REGISTRY_AUTH##*:}" "  tls: {certificate: $pki/registry.crt, key: $pki/registry.key}
auth:
  htpasswd: {realm: apprelease-testbed, path: $tb/registry-auth.htpasswd}"
start registry docker-registry serve "$tb/registry-plain.yml"
start registry-auth docker-registry serve "$tb/registry-auth.yml"
wait_for registry 30 curl -fsS "http://$REGISTRY/v2/"
registry_auth_up() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$pki/ca.crt" "https://$REGISTRY_AUTH/v2/")" == 401 ]]; }
wait_for registry-auth 30 registry_auth_up

# --- Docker engine -------------------------------------------------------------------------------------
DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
export DOCKER_HOST
if ! docker info >/dev/null 2>&1; then
  start dockerd dockerd --host "$DOCKER_HOST"
  wait_for dockerd 60 docker info
else
  log "using the running Docker engine at $DOCKER_HOST"
fi
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "making the local base image $BASE_IMAGE (FROM scratch + busybox-static)"
  ctx="$(mktemp -d)"
  cp "$(command -v busybox)" "$ctx/busybox"
  cat > "$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
EOF
  docker build -q -t "$BASE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# --- the real node --------------------------------------------------------------------------------------
node_up

cat > "$tb/env" <<EOF
KUBECONFIG=$tb/kubeconfig
REGISTRY=$REGISTRY
REGISTRY_AUTH=$REGISTRY_AUTH
REGISTRY_AUTH_USER=$REGISTRY_USER
REGISTRY_AUTH_PASSWORD=$REGISTRY_PASSWORD
REGISTRY_AUTH_CA=$pki/ca.crt
DOCKER_HOST=$DOCKER_HOST
TESTBED_BIN=$bin
TESTBED_BASE_IMAGE=$BASE_IMAGE
REAL_NODE=$NODE_NAME
REAL_NODE_SELECTOR=$NODE_LABEL
REAL_NODE_TAINT=$NODE_TAINT_KEY
HOST_IP=$HOST_IP
API_SERVER_HOST=$HOST_IP
API_SERVER_PORT=$API_PORT
EOF
log "ready: $(kubectl get nodes --no-headers | wc -l) nodes; env in $tb/env"
