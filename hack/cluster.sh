#!/usr/bin/env bash
# The local Kubernetes of rce, built from Debian bookworm's packages: one control plane and
# RCE_NODES (default 2) nodes, each a real kubelet with a containerd of its own, on this machine.
#
#   cluster.sh up               install, build (once), start everything, wait until every node is
#                               Ready; on a running cluster, starts only what is missing (so it
#                               adds nodes to a running cluster and leaves the rest alone)
#   cluster.sh down             stop exactly the processes `up` started (recorded pids); keep caches
#   cluster.sh status           show each component of every node; exit 1 if any is not running
#   cluster.sh env              print the export lines for the running setup
#   cluster.sh stop-node NAME   lose node NAME as a machine would: its kubelet, its containerd, its
#                               container shims and every sandbox process on it, killed
#   cluster.sh start-node NAME  bring node NAME back (images synced) and wait until it is Ready
#   cluster.sh restart-kubelet NAME  restart only that node's kubelet (its containers keep running),
#                               e.g. to apply a changed kubelet config (reservations, RCE_NODES)
#   cluster.sh sync-images      import every image this machine has built into every extra node
#                               whose containerd runs; untaint the nodes that have them all
#   cluster.sh update-taints    only the untainting (sandbox-images/build.sh --import runs it)
#
# Everything listens on 127.0.0.1. The pod network is one bridge per node without a gateway:
# pods have no default route, so nothing they send can leave this machine. See LOCAL-CLUSTER.md
# and docs/local-cluster.md (how the extra nodes share this machine, and the traps on the way).
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
# Components in start order; `down` stops them in reverse (after the extra nodes).
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet redis epmd rabbitmq)
# An extra node registers with this taint and keeps it until every image is in its containerd.
NOT_READY_TAINT="rce.dev/not-ready"
# How many nodes share the machine's CPU and memory (the kubelets' reservations): recorded by
# `up`, read by start-node and restart-kubelet.
NODE_COUNT_FILE="$RCE_STATE/node-count"

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

# cert NAME SUBJECT [SANS]: $PKI/NAME.{crt,key}, signed by the cluster's CA (run in $PKI).
cert() {
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  local ext="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
  [[ -n "${3:-}" ]] && ext+=$'\n'"subjectAltName=$3"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 \
    -extfile <(echo "$ext") 2>/dev/null
  rm -f "$1.csr"
}

make_pki() {
  [[ -f "$PKI/.done" ]] && return 0
  log "creating PKI in $PKI"
  rm -rf "$PKI"; mkdir -p "$PKI"; cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=rce-local-ca" 2>/dev/null
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

# kubeconfig FILE USER-ARGS...: a kubeconfig for https://127.0.0.1:6443. Written aside and
# renamed: `up` on a running cluster rewrites them while others read them.
write_kubeconfig() {
  local file="$1" auth="$2"
  cat > "$file.tmp" <<EOF
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
  chmod 600 "$file.tmp"
  mv -f "$file.tmp" "$file"
}

write_configs() {
  mkdir -p "$RCE_STATE"/{cni/net.d,kubelet,containerd-state,etcd}
  local token; token="$(cut -d, -f1 "$PKI/tokens.csv")"
  write_kubeconfig "$KUBECONFIG_FILE" "    token: $token"
  for c in kubelet controller-manager scheduler; do
    write_kubeconfig "$RCE_STATE/$c.kubeconfig" "    client-certificate: $PKI/$c.crt
    client-key: $PKI/$c.key"
  done
  write_cni_conf "$RCE_STATE/cni/net.d/10-rce.conflist" rce-pods "$BRIDGE" "$POD_CIDR" "$RCE_STATE/cni/ipam"
  write_containerd_conf "$RCE_STATE/containerd.toml" "$RCE_STATE/containerd" "$RCE_STATE/containerd-state" \
    "$CONTAINERD_SOCK" "$RCE_STATE/cni/net.d" "$GVISOR_DIR/runsc.toml" ""
  write_kubelet_conf "$RCE_STATE/kubelet/config.yaml" 10250 10248 "$PKI/kubelet.crt" "$PKI/kubelet.key" ""
}

# write_cni_conf FILE NETWORK BRIDGE CIDR IPAM_DIR: a node's pod network.
# No gateway and no routes: a pod's only route is its own subnet; no ipMasq. No IPv6 on a pod's
# eth0 (no link-local address, so nothing to reach another sandbox or the node with over IPv6);
# the loopback keeps ::1.
write_cni_conf() {
  cat > "$1" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$2",
  "plugins": [
    {"type": "bridge", "bridge": "$3", "isGateway": false, "ipMasq": false, "hairpinMode": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$4"}]],
              "dataDir": "$5"}},
    {"type": "tuning", "sysctl": {"net.ipv6.conf.eth0.disable_ipv6": "1"}},
    {"type": "loopback"}
  ]
}
EOF
}

# write_containerd_conf FILE ROOT STATE SOCKET CNI_CONF_DIR RUNSC_CONFIG RUN_DIR
# RUN_DIR is empty for node 1 (whose file stays as it always was). For an extra node it is where
# its runc keeps container state (not /run/containerd/runc, node 1's), and its Pods' network
# namespaces are mounted under its own state dir (not /run/netns), inside its mount namespace.
write_containerd_conf() {
  local runc_root="" netns=""
  if [[ -n "$7" ]]; then
    runc_root=$'\n'"        Root = \"$7/runc\""
    netns=$'\n'"  netns_mounts_under_state_dir = true"
  fi
  cat > "$1" <<EOF
version = 2
root = "$2"
state = "$3"
[grpc]
  address = "$4"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Trap 2 of LOCAL-CLUSTER.md: negative oom_score_adj is refused on these machines.
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"$netns
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false$runc_root
    # gVisor's own shim (RuntimeClass gvisor, handler runsc); see hack/build-gvisor.sh.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
      runtime_type = "$GVISOR_DIR/bin/containerd-shim-runsc-v1"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "$6"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$5"
EOF
}

# node_count: how many nodes share this machine: RCE_NODES as `up` saw it (or more, when more
# run), recorded for start-node and restart-kubelet.
node_count() {
  if [[ -n "${NODE_COUNT:-}" ]]; then echo "$NODE_COUNT"; else cat "$NODE_COUNT_FILE" 2>/dev/null || echo 1; fi
}

# The reservation that makes N kubelets on one machine add up to that machine: each kubelet sees
# all of its CPUs and memory as capacity and reserves (N-1)/N of both (systemReserved: to one
# kubelet, the other nodes are "the system"), so each node's allocatable is 1/N of the machine
# (memory: less the eviction threshold). With one node nothing is reserved, as before.
reservation_lines() {
  local n; n="$(node_count)"
  ((n > 1)) || return 0
  local cpu_m=$(($(nproc --all) * 1000)) mem_ki
  mem_ki="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
  cat <<EOF
# $n nodes share this machine ($((cpu_m / 1000)) CPUs, ${mem_ki}Ki): each keeps 1/$n, reserves the rest.
systemReserved: {cpu: "$((cpu_m - cpu_m / n))m", memory: "$((mem_ki - mem_ki / n))Ki"}
EOF
}

# write_kubelet_conf FILE PORT HEALTHZ_PORT CERT KEY CGROUP_ROOT (empty for node 1: the root).
write_kubelet_conf() {
  local cgroup_root=""
  [[ -n "$6" ]] && cgroup_root=$'\n'"# This node's pods live under a cgroup of their own (each kubelet has one)."$'\n'"cgroupRoot: $6"
  cat > "$1" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $2
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $3
tlsCertFile: $4
tlsPrivateKeyFile: $5
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs$cgroup_root
failSwapOn: false
# The node-wide cap on processes per pod: the backstop behind the runner's RLIMIT_NPROC.
podPidsLimit: 1024
maxPods: 110
# Every image in the Node's status (default: the 50 largest): with 38 sandbox images and a
# rebuild's old ones not yet removed, a current image dropped out of the list.
nodeStatusMaxImages: -1
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
  reservation_lines >> "$1"
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

# import_image TAR REF [NODE]: import into the node's containerd (k8s.io) unless already there.
import_image() {
  local sock; sock="$(node_sock "${3:-rce-node}")"
  if ctr -a "$sock" -n k8s.io images ls -q 2>/dev/null | grep -qxF "$2"; then return 0; fi
  log "importing $2${3:+ into $3}"
  ctr -a "$sock" -n k8s.io images import --no-unpack "$1" >/dev/null
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
  # The config this kubelet runs with (note_stale_kubelet compares).
  local since=""
  alive kubelet || { cp "$RCE_STATE/kubelet/config.yaml" "$RCE_STATE/kubelet/config.yaml.started"; since="$(date +%s)"; }
  start kubelet "$K8S_BIN/kubelet" --config="$RCE_STATE/kubelet/config.yaml" \
    --kubeconfig="$RCE_STATE/kubelet.kubeconfig" --root-dir="$RCE_STATE/kubelet/root" \
    --cert-dir="$RCE_STATE/kubelet/pki" --hostname-override="$NODE_NAME" \
    --container-runtime=remote --container-runtime-endpoint="unix://$CONTAINERD_SOCK" \
    --runtime-request-timeout=5m --pod-infra-container-image="$PAUSE_IMAGE" --v=1
  # Ready as reported after this start (a restarted node's object says Ready for a while).
  node_ready() { is_node_ready "$NODE_NAME" "$since"; }
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
# Every node has its own bridge and pod CIDR, each guarded the same way: a Pod of one node
# reaches neither another node's Pods (no route, and forwarding between the CIDRs is dropped)
# nor any node.
network_guard() {
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
  local n
  for n in $(wanted_nodes); do network_guard_node "$n" || return 1; done
}

network_guard_node() {
  local bridge cidr
  if [[ $1 == rce-node ]]; then bridge="$BRIDGE" cidr="$POD_CIDR"; else bridge="$(node_bridge "$1")" cidr="$(node_cidr "$1")"; fi
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
  ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
  sysctl -qw "net.ipv6.conf.$bridge.disable_ipv6=1"
  ip link set "$bridge" up
  local rule
  for rule in "FORWARD -s $cidr -j DROP" "FORWARD -d $cidr -j DROP" "INPUT -i $bridge -j DROP"; do
    # shellcheck disable=SC2086
    iptables -C $rule 2>/dev/null || iptables -I $rule
  done
  for rule in "FORWARD -i $bridge -j DROP" "FORWARD -o $bridge -j DROP" "INPUT -i $bridge -j DROP"; do
    # shellcheck disable=SC2086
    ip6tables -C $rule 2>/dev/null || ip6tables -I $rule
  done
}

# ---------------------------------------------------------------------------------------------
# Nodes. Node 1 (rce-node) is what it always was: containerd and kubelet of COMPONENTS, in the
# machine's own mount namespace. Node i >= 2 (rce-node-i) has:
#   containerd  socket /run/containerd-<name>/containerd.sock, root, state and config under
#               $RCE_STATE/nodes/<name>/, runc state in /run/containerd-<name>/runc, runsc root
#               /run/rce-runsc-<i> (runsc's control socket <root>/k8s.io/runsc-<64 hex>.sock must
#               fit in a socket address: 108 bytes), Pod network namespaces under its state dir
#   kubelet     root-dir, cert-dir, config under the node's dir; port 10250+100(i-1), healthz
#               10248+100(i-1); cgroupRoot /<name>; client and serving certificate
#               CN=system:node:<name> (Node authorizer, NodeRestriction); its name in /etc/hosts
#   network     bridge rce<i-1> (no address, IPv6 off), pod CIDR 10.244.<i-1>.0/24, its own CNI
#               conflist dir and host-local dataDir; covered by network_guard
#   logs        a mount namespace of its own, shared by its containerd and kubelet, in which
#               /var/log/pods and /var/log/containers are bind mounts of the node's own dirs. The
#               kubelet 1.20 hardcodes those paths, and its container GC deletes the log dirs of
#               Pods it does not know: two kubelets on one /var/log/pods delete each other's logs.
# ---------------------------------------------------------------------------------------------
node_bridge() { echo "rce$(($(node_index "$1") - 1))"; }
node_cidr() { echo "10.244.$(($(node_index "$1") - 1)).0/24"; }
node_run_dir() { echo "/run/containerd-$1"; }
node_runsc_root() {
  if [[ $1 == rce-node ]]; then echo /run/containerd/runsc; else echo "/run/rce-runsc-$(node_index "$1")"; fi
}
node_containerd_state() {
  if [[ $1 == rce-node ]]; then echo "$RCE_STATE/containerd-state"; else echo "$(node_dir "$1")/containerd-state"; fi
}
# The cgroup (below each hierarchy's root) holding all of a node's Pods.
node_pods_cgroup() { if [[ $1 == rce-node ]]; then echo kubepods; else echo "$1/kubepods"; fi; }
node_kubeconfig() {
  if [[ $1 == rce-node ]]; then echo "$RCE_STATE/kubelet.kubeconfig"; else echo "$(node_dir "$1")/kubelet.kubeconfig"; fi
}

# The node names RCE_NODES asks for, and those beyond it that run already (left alone).
wanted_nodes() {
  local i n
  for ((i = 1; i <= RCE_NODES; i++)); do node_name "$i"; done
  for n in $(extra_nodes); do
    (($(node_index "$n") > RCE_NODES)) && alive "$(node_proc kubelet "$n")" && echo "$n"
  done
  return 0
}

check_node_name() {
  [[ -n "${1:-}" ]] || die "name a node (rce-node, rce-node-2, ...)"
  node_index "$1" >/dev/null || die "no such node name: $1 (rce-node, rce-node-2 ... rce-node-$RCE_MAX_NODES)"
  [[ $1 == rce-node || -d "$(node_dir "$1")" ]] || die "node $1 was never set up here (RCE_NODES=N hack/cluster.sh up)"
}

write_node_configs() {
  local n="$1" i d
  i="$(node_index "$n")"; d="$(node_dir "$n")"
  mkdir -p "$d"/{cni/net.d,cni/ipam,kubelet/root,kubelet/pki,containerd,containerd-state,log/pods,log/containers}
  if [[ ! -f "$PKI/kubelet-$n.crt" ]]; then
    (cd "$PKI" && cert "kubelet-$n" "/O=system:nodes/CN=system:node:$n" "IP:127.0.0.1,DNS:$n,DNS:localhost" \
      && chmod 600 "kubelet-$n.key")
  fi
  write_kubeconfig "$d/kubelet.kubeconfig" "    client-certificate: $PKI/kubelet-$n.crt
    client-key: $PKI/kubelet-$n.key"
  write_cni_conf "$d/cni/net.d/10-rce.conflist" "rce-pods-$i" "$(node_bridge "$n")" "$(node_cidr "$n")" "$d/cni/ipam"
  # gVisor's options with this node's runsc root.
  sed "s|^root = .*|root = \"$(node_runsc_root "$n")\"|" "$GVISOR_DIR/runsc.toml" > "$d/runsc.toml"
  grep -qxF "root = \"$(node_runsc_root "$n")\"" "$d/runsc.toml" || die "no root line in $GVISOR_DIR/runsc.toml"
  write_containerd_conf "$d/containerd.toml" "$d/containerd" "$d/containerd-state" "$(node_sock "$n")" \
    "$d/cni/net.d" "$d/runsc.toml" "$(node_run_dir "$n")"
  write_kubelet_conf "$d/kubelet/config.yaml" $((10250 + 100 * (i - 1))) $((10248 + 100 * (i - 1))) \
    "$PKI/kubelet-$n.crt" "$PKI/kubelet-$n.key" "/$n"
}

# The kubelet's cgroupRoot must exist in every hierarchy (cpuset: with the root's CPUs and
# memory nodes, or nothing could join it).
make_cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -f "$h/cgroup.procs" ]] || continue
    mkdir -p "$h$1"
    if [[ -f "$h/cpuset.cpus" ]]; then
      [[ -n "$(cat "$h$1/cpuset.cpus")" ]] || cat "$h/cpuset.cpus" > "$h$1/cpuset.cpus"
      [[ -n "$(cat "$h$1/cpuset.mems")" ]] || cat "$h/cpuset.mems" > "$h$1/cpuset.mems"
    fi
  done
}

hosts_line() { grep -qE "^127\.0\.0\.1[[:space:]].*\b$1\b" /etc/hosts || echo "127.0.0.1 $1" >> /etc/hosts; }

# Run as `cluster.sh _containerd-ns NAME` by start_node_containerd, in the node's new mount
# namespace (unshare -m --propagation slave): make that namespace the node's own, then become
# its containerd (exec: the recorded pid is containerd's).
cmd_containerd_ns() {
  local n="$1" d m
  d="$(node_dir "$n")"
  # The namespace starts as a copy of the machine's mounts, node 1's Pod mounts among them
  # (rootfs overlays, network namespaces, volumes): copies that would pin them after node 1 is
  # done with them. Drop those; keep the machine's own filesystems.
  { awk '{print $5}' /proc/self/mountinfo | grep -E "^($RCE_STATE/|/run/netns/|/run/containerd/)" || true; } |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  mount --bind "$d/log/pods" /var/log/pods
  mount --bind "$d/log/containers" /var/log/containers
  exec containerd --config "$d/containerd.toml"
}

start_node_containerd() {
  local n="$1" c; c="$(node_proc containerd "$n")"
  if [[ $n == rce-node ]]; then start_containerd; return; fi
  if ! alive "$c"; then
    # A kubelet left running in the mount namespace of a containerd that is gone would keep
    # (and write into) a namespace nobody else sees: restart it with the new containerd.
    stop "$(node_proc kubelet "$n")"
    mkdir -p /var/log/pods /var/log/containers "$(node_run_dir "$n")"
    modprobe overlay 2>/dev/null || true
    start "$c" unshare -m --propagation slave -- "$RCE_ROOT/hack/cluster.sh" _containerd-ns "$n"
  fi
  wait_for "$c" 30 ctr -a "$(node_sock "$n")" version
}

# is_node_ready NAME [SINCE]: Ready, as the kubelet last said at or after SINCE (epoch seconds):
# a Node object keeps saying Ready for a while after its kubelet is gone.
is_node_ready() {
  local ready='{range .status.conditions[?(@.type=="Ready")]}{.status} {.lastHeartbeatTime}{end}' st hb
  st="$(kubectl --kubeconfig "$KUBECONFIG_FILE" get node "$1" -o jsonpath="$ready" 2>/dev/null)" || return 1
  hb="${st#* }"
  [[ "${st%% *}" == True ]] || return 1
  [[ -z "${2:-}" ]] || (($(date -d "$hb" +%s) >= $2))
}

start_node_kubelet() {
  local n="$1" k d i; k="$(node_proc kubelet "$n")"; d="$(node_dir "$n")"; i="$(node_index "$n")"
  if [[ $n == rce-node ]]; then start_kubelet; return; fi
  hosts_line "$n"
  make_cgroup_root "$n"
  # The same node name as ever: an existing Node object is reused, so the registration taint
  # would not come back; put it back by hand while images are missing.
  if kubectl --kubeconfig "$KUBECONFIG_FILE" get node "$n" >/dev/null 2>&1 && ! node_has_all_images "$n"; then
    kubectl --kubeconfig "$KUBECONFIG_FILE" taint node "$n" "$NOT_READY_TAINT=true:NoSchedule" --overwrite >/dev/null
  fi
  local since=""
  alive "$k" || { cp "$d/kubelet/config.yaml" "$d/kubelet/config.yaml.started"; since="$(date +%s)"; }
  # nsenter -m without a pid namespace does not fork: the recorded pid is the kubelet's.
  start "$k" nsenter -t "$(cat "$(pidfile "$(node_proc containerd "$n")")")" -m -- \
    "$K8S_BIN/kubelet" --config="$d/kubelet/config.yaml" \
    --kubeconfig="$d/kubelet.kubeconfig" --root-dir="$d/kubelet/root" \
    --cert-dir="$d/kubelet/pki" --hostname-override="$n" \
    --container-runtime=remote --container-runtime-endpoint="unix://$(node_sock "$n")" \
    --containerd="$(node_sock "$n")" \
    --register-with-taints="$NOT_READY_TAINT=true:NoSchedule" \
    --runtime-request-timeout=5m --pod-infra-container-image="$PAUSE_IMAGE" --v=1
  node_ready_n() { is_node_ready "$n" "$since"; }
  wait_for "$k" 120 node_ready_n
  check_alive "$(node_proc containerd "$n")"
}

# Every image a node needs, as "REF<TAB>TAR" (those whose tar this machine has): pause, the
# tests' busybox, the sandbox images (sandbox-images/build.sh) and the engine's own images.
wanted_images() {
  local dir="$RCE_CACHE/images" idx
  printf '%s\t%s\n' "$PAUSE_IMAGE" "$dir/pause-3.2.tar"
  [[ -f "$RCE_STATE/busybox-image" ]] &&
    printf '%s\t%s\n' "$(cat "$RCE_STATE/busybox-image")" "$dir/busybox-$(cut -d: -f2 < "$RCE_STATE/busybox-image").tar"
  for idx in "$dir/index.tsv" "$dir/engine-index.tsv"; do
    [[ -f "$idx" ]] && awk -F'\t' 'NF >= 3 {print $2 "\t" $3}' "$idx"
  done
  return 0
}

# image_digests SOCKET: "REF DIGEST" of every image of that containerd.
image_digests() { ctr -a "$1" -n k8s.io images ls 2>/dev/null | awk 'NR > 1 {print $1, $3}'; }

# missing_images NAME: the wanted images not in that node's containerd, or there under another
# digest than node 1's (a tag re-imported into node 1 alone, as hack/operator-image.sh does).
missing_images() {
  local present reference ref tar have want
  present="$(ctr -a "$(node_sock "$1")" -n k8s.io images ls 2>/dev/null | awk 'NR > 1 {print $1, $3}')" || return 1
  reference="$(image_digests "$(node_sock rce-node)")"
  while IFS=$'\t' read -r ref tar; do
    [[ -f "$tar" ]] || continue
    have="$(awk -v r="$ref" '$1 == r {print $2}' <<<"$present")"
    want="$(awk -v r="$ref" '$1 == r {print $2}' <<<"$reference")"
    if [[ -z "$have" || (-n "$want" && "$have" != "$want") ]]; then printf '%s\t%s\n' "$ref" "$tar"; fi
  done < <(wanted_images)
}

node_has_all_images() { local m; m="$(missing_images "$1")" || return 1; [[ -z "$m" ]]; }

# import_into NAME: every missing image into that node's containerd (unpacked, as
# sandbox-images/build.sh does for node 1: a sandbox's first start must not pay the unpack).
import_into() {
  local n="$1" sock ref tar t0=$SECONDS count=0
  sock="$(node_sock "$n")"
  while IFS=$'\t' read -r ref tar; do
    log "importing $ref into $n"
    ctr -a "$sock" -n k8s.io images import "$tar" >/dev/null || die "ctr import of $tar into $n failed"
    count=$((count + 1))
  done < <(missing_images "$n")
  ((count == 0)) || log "$n: $count images imported in $((SECONDS - t0))s"
}

# Untaint each extra node that has every image; taint those that lack some.
update_taints() {
  local n
  for n in $(extra_nodes); do
    alive "$(node_proc containerd "$n")" || continue
    kubectl --kubeconfig "$KUBECONFIG_FILE" get node "$n" >/dev/null 2>&1 || continue
    if node_has_all_images "$n"; then
      if kubectl --kubeconfig "$KUBECONFIG_FILE" taint node "$n" "$NOT_READY_TAINT:NoSchedule-" >/dev/null 2>&1; then
        log "$n has every image: taint $NOT_READY_TAINT removed"
      fi
    else
      kubectl --kubeconfig "$KUBECONFIG_FILE" taint node "$n" "$NOT_READY_TAINT=true:NoSchedule" --overwrite >/dev/null
      log "$n lacks $(missing_images "$n" | wc -l) images: tainted $NOT_READY_TAINT:NoSchedule"
    fi
  done
  return 0
}

# start_node NAME: containerd, pause and busybox, kubelet (registers tainted), every image, untaint.
start_node() {
  local n="$1" t0=$SECONDS
  if [[ $n != rce-node ]]; then
    write_node_configs "$n"
    network_guard_node "$n" || die "the pod network guard of $n could not be installed"
  fi
  start_node_containerd "$n"
  import_image "$RCE_CACHE/images/pause-3.2.tar" "$PAUSE_IMAGE" "$n"
  import_image "$RCE_CACHE/images/busybox-$(cut -d: -f2 < "$RCE_STATE/busybox-image").tar" "$(cat "$RCE_STATE/busybox-image")" "$n"
  start_node_kubelet "$n"
  if [[ $n != rce-node ]]; then
    import_into "$n"
    update_taints
  fi
  log "node $n Ready in $((SECONDS - t0))s"
}

# kill_node_workloads NAME SIGNAL: the node's sandboxes (every process in its Pods' cgroups, the
# init processes its containerd recorded, gVisor's sandboxes and gofers from runsc's state files),
# then its container shims, which outlive containerd by design.
kill_node_workloads() {
  local n="$1" sig="$2" state runsc f p
  state="$(node_containerd_state "$n")"; runsc="$(node_runsc_root "$n")"
  if [[ -d "$state" ]]; then
    for f in "$state"/io.containerd.runtime.v2.task/k8s.io/*/init.pid; do
      [[ -f "$f" ]] && kill -KILL "$(cat "$f")" 2>/dev/null || true
    done
  fi
  for f in "$runsc"/k8s.io/*.state; do
    [[ -f "$f" ]] || continue
    jq -r '.. | objects | (.pid?, .goferPid?) // empty' "$f" 2>/dev/null | sort -u | while read -r p; do
      [[ "$p" =~ ^[0-9]+$ && "$p" -gt 1 ]] && kill -KILL "$p" 2>/dev/null || true
    done
  done
  if [[ -d "/sys/fs/cgroup/pids/$(node_pods_cgroup "$n")" ]]; then
    { find "/sys/fs/cgroup/pids/$(node_pods_cgroup "$n")" -name cgroup.procs -exec cat {} + 2>/dev/null || true; } |
      while read -r p; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  if [[ -d "$state" ]]; then
    for f in "$state"/io.containerd.runtime.v2.task/k8s.io/*/shim.pid; do
      [[ -f "$f" ]] && kill "-$sig" "$(cat "$f")" 2>/dev/null || true
    done
  fi
  # The runc v2 shim writes no shim.pid: find the shims of this node's containerd by the
  # address they were started with (exactly this node's socket).
  for p in $(node_shims "$n"); do kill "-$sig" "$p" 2>/dev/null || true; done
  # A shim left after TERM (its containers are gone) is killed.
  if [[ $sig != KILL ]]; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -z "$(node_shims "$n")" ]] && break; sleep 0.3; done
    for p in $(node_shims "$n"); do kill -KILL "$p" 2>/dev/null || true; done
  fi
  return 0
}

# node_shims NAME: pids of the container shims started by that node's containerd.
node_shims() {
  local sock f args; sock="$(node_sock "$1")"
  for f in /proc/[0-9]*/cmdline; do
    args="$(tr '\0' '\n' 2>/dev/null < "$f")" || continue
    grep -qxF -- "$sock" <<<"$args" || continue
    head -n 1 <<<"$args" | grep -qE '(^|/)containerd-shim-[^/]*$' || continue
    f="${f#/proc/}"; echo "${f%/cmdline}"
  done
  return 0
}

# stop_node NAME SIGNAL: kubelet, containerd, then what they leave running (shims get SIGNAL).
stop_node() {
  local n="$1"
  stop "$(node_proc kubelet "$n")"
  stop "$(node_proc containerd "$n")"
  kill_node_workloads "$n" "$2"
}

# A kubelet started before its config last changed (RCE_NODES, say) runs with the old one.
note_stale_kubelet() {
  local conf
  if [[ $1 == rce-node ]]; then conf="$RCE_STATE/kubelet/config.yaml"; else conf="$(node_dir "$1")/kubelet/config.yaml"; fi
  alive "$(node_proc kubelet "$1")" || return 0
  cmp -s "$conf" "$conf.started" && return 0
  log "NOTE: the kubelet of $1 runs with an older config than $conf (reservations for" \
    "$(node_count) nodes); it applies at its next start: hack/cluster.sh restart-kubelet $1" \
    "(containers keep running)"
}

cmd_stop_node() {
  check_node_name "${1:-}"
  log "losing node $1: kubelet, containerd, shims and sandboxes"
  stop_node "$1" KILL
  if [[ $1 == rce-node ]]; then
    # Node 1 lives in the machine's mount namespace: its Pods' mounts stay behind there.
    { grep -oE " $RCE_STATE/(containerd-state|containerd|kubelet/root)/[^ ]*| /run/netns/[^ ]*" /proc/mounts || true; } |
      sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  log "node $1 stopped"
}

cmd_start_node() {
  check_node_name "${1:-}"
  [[ $EUID -eq 0 ]] || die "run as root"
  mkdir -p "$LOGS" "$PIDS"
  start_node "$1"
}

cmd_restart_kubelet() {
  check_node_name "${1:-}"
  if [[ $1 == rce-node ]]; then write_kubelet_conf "$RCE_STATE/kubelet/config.yaml" 10250 10248 "$PKI/kubelet.crt" "$PKI/kubelet.key" ""
  else write_node_configs "$1"; fi
  stop "$(node_proc kubelet "$1")"
  start_node_kubelet "$1"
}

cmd_sync_images() {
  local n
  for n in $(extra_nodes); do
    if alive "$(node_proc containerd "$n")"; then import_into "$n"; else log "$n is not running: not importing"; fi
  done
  update_taints
}

cmd_up() {
  [[ $EUID -eq 0 ]] || die "run as root (it starts containerd and a kubelet)"
  local t0=$SECONDS n
  [[ "$RCE_NODES" =~ ^[1-9]$ ]] && ((RCE_NODES <= RCE_MAX_NODES)) || die "RCE_NODES=$RCE_NODES: 1 to $RCE_MAX_NODES"
  install_deps
  "$RCE_ROOT/hack/build-k8s.sh"
  "$RCE_ROOT/hack/build-gvisor.sh" "$GVISOR_DIR/bin"
  mkdir -p "$RCE_STATE" "$LOGS" "$PIDS"
  make_pki
  NODE_COUNT="$(wanted_nodes | wc -l)"
  echo "$NODE_COUNT" > "$NODE_COUNT_FILE"
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
  for n in $(wanted_nodes); do [[ $n == rce-node ]] || start_node "$n"; done
  wait_rabbitmq
  for n in $(wanted_nodes); do note_stale_kubelet "$n"; done
  log "cluster up in $((SECONDS - t0))s: nodes $(wanted_nodes | tr '\n' ' ')"
  cmd_env_human
}

cmd_down() {
  local i n
  # The extra nodes first, last one first. Each lives in a mount namespace of its own, which
  # (with its mounts) is gone once its kubelet, containerd and shims are.
  for n in $(extra_nodes | tac); do stop_node "$n" TERM; done
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop "${COMPONENTS[$i]}"; done
  # Sandbox containers are children of containerd-shim processes that outlive containerd by
  # design; they belong to pods this cluster started: stop them too (and gVisor's sandboxes
  # and gofers, whose pids are in the state files of our runsc root).
  kill_node_workloads rce-node TERM
  # Unmount what the kubelet and containerd mounted under our state dir.
  grep -o " $RCE_STATE/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  log "down"
}

cmd_status() {
  local bad=0 name n
  show() {
    if alive "$1"; then printf '%-24s running  pid %s\n' "$1" "$(cat "$(pidfile "$1")")"
    else printf '%-24s STOPPED  log %s\n' "$1" "$LOGS/$1.log"; bad=1; fi
  }
  for name in "${COMPONENTS[@]}"; do show "$name"; done
  # The extra nodes of the cluster as `up` set it up (beyond those: only those that run).
  for n in $(extra_nodes); do
    if (($(node_index "$n") <= $(node_count))) || alive "$(node_proc kubelet "$n")" || alive "$(node_proc containerd "$n")"; then
      show "$(node_proc containerd "$n")"; show "$(node_proc kubelet "$n")"
    fi
  done
  if alive kube-apiserver; then
    kubectl --kubeconfig "$KUBECONFIG_FILE" get nodes --request-timeout=5s -o custom-columns='NODE:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,CPU:.status.allocatable.cpu,MEMORY:.status.allocatable.memory,TAINTS:.spec.taints[*].key' 2>/dev/null || true
  fi
  for n in rce-node $(extra_nodes); do note_stale_kubelet "$n"; done
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
  stop-node) cmd_stop_node "${2:-}";; start-node) cmd_start_node "${2:-}";;
  restart-kubelet) cmd_restart_kubelet "${2:-}";; sync-images) cmd_sync_images;; update-taints) update_taints;;
  _containerd-ns) cmd_containerd_ns "$2";;
  *) echo "usage: $0 up|down|status|env|stop-node NAME|start-node NAME|restart-kubelet NAME|sync-images" >&2; exit 2;;
esac
