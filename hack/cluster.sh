#!/usr/bin/env bash
# The local single-node Kubernetes of rce, built from Debian bookworm's packages.
#
#   cluster.sh up      install, build (once), start everything, wait until the node is Ready
#   cluster.sh down    stop exactly the processes `up` started (recorded pids); keep caches
#   cluster.sh status  show each component; exit 1 if any is not running
#   cluster.sh env     print the export lines for the running setup
#
# Everything listens on 127.0.0.1. The pod network is a bridge without a gateway: pods have
# no default route, so nothing they send can leave this machine. See LOCAL-CLUSTER.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"

PKI="$RCE_STATE/pki"
KUBECONFIG_FILE="$RCE_STATE/kubeconfig"
NODE_NAME="rce-node"
REDIS_PORT="${RCE_REDIS_PORT:-16379}"
AMQP_PORT="${RCE_AMQP_PORT:-5672}"
CONTAINERD_SOCK="/run/containerd/containerd.sock"
POD_CIDR="10.244.0.0/24"
BRIDGE="rce0"
SERVICE_CIDR="10.96.0.0/24"
PAUSE_IMAGE="rce.dev/pause:3.2"
# gVisor (runsc) for the `gvisor` RuntimeClass: built by hack/build-gvisor.sh into the cache.
GVISOR_DIR="$RCE_CACHE/gvisor-20240729.0"
# Components in start order; `down` stops them in reverse.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet redis epmd rabbitmq)

# check_alive NAME: fail loudly, naming the component and its log, when it died.
check_alive() {
  alive "$1" && return 0
  echo "---- last lines of $LOGS/$1.log ----" >&2
  tail -n 25 "$LOGS/$1.log" >&2 || true
  die "$1 is not running (it exited); log: $LOGS/$1.log"
}

# wait_for NAME TIMEOUT CMD...: poll CMD until it succeeds, failing fast if NAME died.
wait_for() {
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    check_alive "$name"
    ((SECONDS < deadline)) || die "$name did not become ready within ${timeout}s; log: $LOGS/$name.log"
    sleep 0.3
  done
}

install_deps() {
  need_pkgs etcd-server containerd runc containernetworking-plugins redis-server rabbitmq-server \
    openssl iptables iproute2 busybox-static gcc libc6-dev curl ca-certificates util-linux jq
  command -v kubectl >/dev/null || die "kubectl is not on PATH (machines of this kind ship it in /usr/bin)"
  # The distribution's units may have started their own daemons; ours use their own
  # configs, ports and sockets. Stop the distribution's, if any (no systemd here: ignore).
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now containerd redis-server rabbitmq-server etcd >/dev/null 2>&1 || true
  fi
}

make_pki() {
  [[ -f "$PKI/.done" ]] && return 0
  log "creating PKI in $PKI"
  rm -rf "$PKI"; mkdir -p "$PKI"; cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=rce-local-ca" 2>/dev/null
  cert() { # cert NAME SUBJECT [SANS]
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    local ext="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
    [[ -n "${3:-}" ]] && ext+=$'\n'"subjectAltName=$3"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 \
      -extfile <(echo "$ext") 2>/dev/null
    rm -f "$1.csr"
  }
  cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "IP:127.0.0.1,DNS:$NODE_NAME,DNS:localhost"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  echo "$(openssl rand -hex 24),admin,admin,system:masters" > tokens.csv
  chmod 600 ./*.key tokens.csv
  touch .done
  cd - >/dev/null
}

# kubeconfig FILE USER-ARGS...: a kubeconfig for https://127.0.0.1:6443.
write_kubeconfig() {
  local file="$1" auth="$2"
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rce-local
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
contexts:
- name: rce-local
  context: {cluster: rce-local, user: user}
current-context: rce-local
users:
- name: user
  user:
$auth
EOF
  chmod 600 "$file"
}

write_configs() {
  mkdir -p "$RCE_STATE"/{cni/net.d,kubelet,containerd-state,etcd}
  local token; token="$(cut -d, -f1 "$PKI/tokens.csv")"
  write_kubeconfig "$KUBECONFIG_FILE" "    token: $token"
  for c in kubelet controller-manager scheduler; do
    write_kubeconfig "$RCE_STATE/$c.kubeconfig" "    client-certificate: $PKI/$c.crt
    client-key: $PKI/$c.key"
  done
  # No gateway and no routes: a pod's only route is its own subnet; no ipMasq. No IPv6 on
  # a pod's eth0 (no link-local address, so nothing to reach another sandbox or the node
  # with over IPv6); the loopback keeps ::1.
  cat > "$RCE_STATE/cni/net.d/10-rce.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "rce-pods",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "dataDir": "$RCE_STATE/cni/ipam"}},
    {"type": "tuning", "sysctl": {"net.ipv6.conf.eth0.disable_ipv6": "1"}},
    {"type": "loopback"}
  ]
}
EOF
  cat > "$RCE_STATE/containerd.toml" <<EOF
version = 2
root = "$RCE_STATE/containerd"
state = "$RCE_STATE/containerd-state"
[grpc]
  address = "$CONTAINERD_SOCK"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Trap 2 of LOCAL-CLUSTER.md: negative oom_score_adj is refused on these machines.
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
    # gVisor's own shim (RuntimeClass gvisor, handler runsc); see hack/build-gvisor.sh.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
      runtime_type = "$GVISOR_DIR/bin/containerd-shim-runsc-v1"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "$GVISOR_DIR/runsc.toml"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RCE_STATE/cni/net.d"
EOF
  cat > "$RCE_STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
# The node-wide cap on processes per pod: the backstop behind the runner's RLIMIT_NPROC.
podPidsLimit: 1024
maxPods: 110
kubeAPIQPS: 100
kubeAPIBurst: 200
serializeImagePulls: false
# A result line can be ~22 MiB (4 MiB per stream, run and compile, base64): the log must
# not rotate under it.
containerLogMaxSize: 64Mi
# Images are imported, never pulled: the kubelet must not garbage-collect them (this disk
# looks fuller to the kubelet than it is, and GC removed sandbox images mid-run).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%"}
evictionPressureTransitionPeriod: 30s
# Memory-backed emptyDirs get a tmpfs of exactly their sizeLimit (the sandbox work dir).
featureGates: {SizeMemoryBackedVolumes: true}
EOF
}

build_pause_and_test_images() {
  local dir="$RCE_CACHE/images"; mkdir -p "$dir"
  if [[ ! -f "$dir/pause-3.2.tar" ]]; then
    log "building the pause image"
    local root; root="$(mktemp -d)"
    gcc -static -O2 -o "$root/pause" "$RCE_ROOT/hack/pause.c"
    "$RCE_ROOT/hack/mkimage.sh" "$dir/pause-3.2.tar" "$PAUSE_IMAGE" --entrypoint '["/pause"]' --user 65535 "$root"
    rm -rf "$root"
  fi
  # A tiny busybox image for the cluster's own tests (hardened Pod, network isolation).
  local bbver; bbver="$(dpkg-query -W -f='${Version}' busybox-static | tr -c 'a-zA-Z0-9.\n' '-')"
  BUSYBOX_IMAGE="rce.dev/busybox:$bbver"
  if [[ ! -f "$dir/busybox-$bbver.tar" ]]; then
    log "building the busybox test image"
    local root; root="$(mktemp -d)"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc"
    cp /bin/busybox "$root/bin/busybox"
    for a in sh cat echo ls id nc wget ip sleep head wc grep true false env; do ln -s busybox "$root/bin/$a"; done
    echo "nobody:x:65534:65534:nobody:/:/bin/sh" > "$root/etc/passwd"
    "$RCE_ROOT/hack/mkimage.sh" "$dir/busybox-$bbver.tar" "$BUSYBOX_IMAGE" --entrypoint '["/bin/sh"]' --user 65534 "$root"
    rm -rf "$root"
  fi
  echo "$BUSYBOX_IMAGE" > "$RCE_STATE/busybox-image"
}

# import_image TAR REF: import into containerd's k8s.io namespace unless already there.
import_image() {
  if ctr -a "$CONTAINERD_SOCK" -n k8s.io images ls -q 2>/dev/null | grep -qxF "$2"; then return 0; fi
  log "importing $2"
  ctr -a "$CONTAINERD_SOCK" -n k8s.io images import --no-unpack "$1" >/dev/null
}

start_containerd() {
  mkdir -p /run/containerd
  modprobe overlay 2>/dev/null || true; modprobe br_netfilter 2>/dev/null || true
  start containerd containerd --config "$RCE_STATE/containerd.toml"
  wait_for containerd 30 ctr -a "$CONTAINERD_SOCK" version
}

start_etcd() {
  start etcd etcd --name rce --data-dir "$RCE_STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster rce=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --auto-compaction-retention=1h --quota-backend-bytes=4294967296
  wait_for etcd 30 curl -fsS http://127.0.0.1:2379/health
}

start_control_plane() {
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port=6443 --insecure-port=0 --service-cluster-ip-range="$SERVICE_CIDR" \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --token-auth-file="$PKI/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=Hostname --allow-privileged=false \
    --enable-admission-plugins=NodeRestriction --event-ttl=1h \
    --max-requests-inflight=800 --max-mutating-requests-inflight=400 --v=1
  wait_for kube-apiserver 90 kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$RCE_STATE/controller-manager.kubeconfig" --authentication-kubeconfig="$RCE_STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$RCE_STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --secure-port=10257 --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --use-service-account-credentials=true --allocate-node-cidrs=false \
    --kube-api-qps=100 --kube-api-burst=200 --concurrent-gc-syncs=10 --v=1
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$RCE_STATE/scheduler.kubeconfig" --authentication-kubeconfig="$RCE_STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$RCE_STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --secure-port=10259 --leader-elect=false --v=1
}

start_kubelet() {
  # The apiserver reaches the kubelet by the node's name (a loopback node IP is refused by
  # the kubelet); make that name resolve to 127.0.0.1, where the kubelet listens.
  grep -qE "^127\.0\.0\.1[[:space:]].*\b$NODE_NAME\b" /etc/hosts || echo "127.0.0.1 $NODE_NAME" >> /etc/hosts
  # Every rce image is named rce.dev/...: should one ever be missing, containerd's pull
  # attempt must not look the name up off this machine.
  grep -qE "^127\.0\.0\.1[[:space:]]+rce\.dev\b" /etc/hosts || echo "127.0.0.1 rce.dev" >> /etc/hosts
  start kubelet "$K8S_BIN/kubelet" --config="$RCE_STATE/kubelet/config.yaml" \
    --kubeconfig="$RCE_STATE/kubelet.kubeconfig" --root-dir="$RCE_STATE/kubelet/root" \
    --cert-dir="$RCE_STATE/kubelet/pki" --hostname-override="$NODE_NAME" \
    --container-runtime=remote --container-runtime-endpoint="unix://$CONTAINERD_SOCK" \
    --runtime-request-timeout=5m --pod-infra-container-image="$PAUSE_IMAGE" --v=1
  local ready='{range .status.conditions[?(@.type=="Ready")]}{.status}{end}'
  node_ready() { [[ "$(kubectl --kubeconfig "$KUBECONFIG_FILE" get node "$NODE_NAME" -o jsonpath="$ready" 2>/dev/null)" == True ]]; }
  wait_for kubelet 120 node_ready
  for c in containerd etcd kube-apiserver kube-controller-manager kube-scheduler; do check_alive "$c"; done
}

start_redis() {
  mkdir -p "$RCE_STATE/redis"
  start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes --save "" \
    --appendonly no --dir "$RCE_STATE/redis" --daemonize no
  wait_for redis 20 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
}

start_rabbitmq() {
  # epmd and the Erlang distribution listener default to all interfaces: pin both to loopback.
  export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=4369
  start epmd epmd -address 127.0.0.1 -port 4369
  wait_for epmd 10 epmd -port 4369 -names
  mkdir -p "$RCE_STATE/rabbitmq"/{mnesia,log}
  RABBITMQ_NODENAME=rce@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" \
  RABBITMQ_DIST_PORT=25672 RABBITMQ_MNESIA_BASE="$RCE_STATE/rabbitmq/mnesia" \
  RABBITMQ_LOG_BASE="$RCE_STATE/rabbitmq/log" RABBITMQ_ENABLED_PLUGINS_FILE="$RCE_STATE/rabbitmq/enabled_plugins" \
  RABBITMQ_CONFIG_FILE="$RCE_STATE/rabbitmq/rabbitmq" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  HOME="$RCE_STATE/rabbitmq" \
    start rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server
}

wait_rabbitmq() {
  amqp_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$AMQP_PORT"; }
  wait_for rabbitmq 90 amqp_open
}

# Where the deny-all of sandbox traffic lives on a cluster without an enforcing CNI, in
# layers, for IPv4 and IPv6 alike:
# - the bridge has no gateway and no address of either family (it is made here, before any
#   Pod, with IPv6 off), and Pods have no IPv6 on eth0 (the CNI tuning plugin);
# - bridged and forwarded traffic of the pod network is dropped (br_netfilter hands bridged
#   frames to iptables and ip6tables), and so is anything from the bridge to the node itself.
network_guard() {
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1"
  ip link set "$BRIDGE" up
  local rule
  for rule in "FORWARD -s $POD_CIDR -j DROP" "FORWARD -d $POD_CIDR -j DROP" "INPUT -i $BRIDGE -j DROP"; do
    # shellcheck disable=SC2086
    iptables -C $rule 2>/dev/null || iptables -I $rule
  done
  for rule in "FORWARD -i $BRIDGE -j DROP" "FORWARD -o $BRIDGE -j DROP" "INPUT -i $BRIDGE -j DROP"; do
    # shellcheck disable=SC2086
    ip6tables -C $rule 2>/dev/null || ip6tables -I $rule
  done
}

cmd_up() {
  [[ $EUID -eq 0 ]] || die "run as root (it starts containerd and a kubelet)"
  local t0=$SECONDS
  install_deps
  "$RCE_ROOT/hack/build-k8s.sh"
  "$RCE_ROOT/hack/build-gvisor.sh" "$GVISOR_DIR/bin"
  mkdir -p "$RCE_STATE" "$LOGS" "$PIDS"
  make_pki
  write_configs
  build_pause_and_test_images
  network_guard || die "the pod network guard (iptables, ip6tables, the $BRIDGE bridge) could not be installed"
  start_containerd
  import_image "$RCE_CACHE/images/pause-3.2.tar" "$PAUSE_IMAGE"
  import_image "$RCE_CACHE/images/busybox-$(cut -d: -f2 < "$RCE_STATE/busybox-image").tar" "$(cat "$RCE_STATE/busybox-image")"
  start_etcd
  start_redis
  start_rabbitmq
  start_control_plane
  start_kubelet
  kubectl --kubeconfig "$KUBECONFIG_FILE" apply -f "$RCE_ROOT/hack/runtimeclass-gvisor.yaml" >/dev/null
  wait_rabbitmq
  log "cluster up in $((SECONDS - t0))s"
  cmd_env_human
}

cmd_down() {
  local i f
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop "${COMPONENTS[$i]}"; done
  # Sandbox containers are children of containerd-shim processes that outlive containerd by
  # design; they belong to pods this cluster started: stop them too.
  if [[ -d "$RCE_STATE/containerd-state" ]]; then
    for f in "$RCE_STATE"/containerd-state/io.containerd.runtime.v2.task/k8s.io/*/init.pid; do
      [[ -f "$f" ]] && kill -KILL "$(cat "$f")" 2>/dev/null || true
    done
    for f in "$RCE_STATE"/containerd-state/io.containerd.runtime.v2.task/k8s.io/*/shim.pid; do
      [[ -f "$f" ]] && kill -TERM "$(cat "$f")" 2>/dev/null || true
    done
  fi
  # gVisor sandboxes and their gofers outlive their shims too: their pids are recorded in
  # the state files of our runsc root (runsc.toml).
  for f in /run/containerd/runsc/k8s.io/*.state; do
    [[ -f "$f" ]] || continue
    jq -r '.. | objects | (.pid?, .goferPid?) // empty' "$f" 2>/dev/null | sort -u | while read -r pid; do
      [[ "$pid" =~ ^[0-9]+$ && "$pid" -gt 1 ]] && kill -KILL "$pid" 2>/dev/null || true
    done
  done
  # Unmount what the kubelet and containerd mounted under our state dir.
  grep -o " $RCE_STATE/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  log "down"
}

cmd_status() {
  local bad=0
  for name in "${COMPONENTS[@]}"; do
    if alive "$name"; then printf '%-24s running  pid %s\n' "$name" "$(cat "$(pidfile "$name")")"
    else printf '%-24s STOPPED  log %s\n' "$name" "$LOGS/$name.log"; bad=1; fi
  done
  return $bad
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  echo "export RCE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
  echo "export RCE_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
  [[ -f "$RCE_STATE/busybox-image" ]] && echo "export RCE_TEST_IMAGE=$(cat "$RCE_STATE/busybox-image")"
  [[ -f "$RCE_STATE/api-url" ]] && echo "export RCE_API=$(cat "$RCE_STATE/api-url")"
  return 0
}

cmd_env_human() {
  cat >&2 <<EOF

  Kubernetes API   https://127.0.0.1:6443   (kubeconfig $KUBECONFIG_FILE)
  Redis            127.0.0.1:$REDIS_PORT
  RabbitMQ (AMQP)  127.0.0.1:$AMQP_PORT
  Logs             $LOGS/
  Use it:          eval "\$(make env)"; kubectl get nodes
EOF
}

case "${1:-}" in
  up) cmd_up;; down) cmd_down;; status) cmd_status;; env) cmd_env;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2;;
esac
