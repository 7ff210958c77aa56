#!/usr/bin/env bash
# Starts the local test bed: etcd, kube-apiserver (RBAC), kube-controller-manager, kube-scheduler, kwok with
# fake nodes, two distribution registries (plain http; TLS + Basic auth) and a Docker engine when none runs.
# Idempotent: what already runs is left alone. Writes .testbed/env for tests, the Makefile and users.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tb="${TESTBED_DIR:-$root/.testbed}"
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

bin="$("$here/build.sh")"
export PATH="$bin:$PATH"

started_any=false
alive() { [[ -f "$run/$1.pid" ]] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start NAME CMD...: runs CMD in its own session, logs to logs/NAME.log, records the pid.
start() {
  local name="$1"; shift
  if alive "$name"; then log "$name already running (pid $(cat "$run/$name.pid"))"; return 0; fi
  log "starting $name"
  started_any=true
  setsid "$@" >>"$logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$run/$name.pid"
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
cert apiserver "/CN=kube-apiserver" \
  "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
  serverAuth
cert admin "/O=system:masters/CN=testbed-admin" "" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" "" clientAuth
cert scheduler "/CN=system:kube-scheduler" "" clientAuth
cert registry "/CN=apprelease-testbed-registry" "IP:127.0.0.1,DNS:localhost" serverAuth

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

start kube-apiserver kube-apiserver \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
  --secure-port "$API_PORT" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --authorization-mode RBAC --anonymous-auth=false \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true --profiling=false \
  --endpoint-reconciler-type none
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
start kwok kwok --kubeconfig "$tb/kubeconfig" --config "$bin/stages.yaml" \
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
registry_config plain "$REGISTRY" ""
registry_config auth "$REGISTRY_AUTH" "  tls: {certificate: $pki/registry.crt, key: $pki/registry.key}
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
EOF
log "ready: $(kubectl get nodes --no-headers | wc -l) nodes; env in $tb/env"
