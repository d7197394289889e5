#!/usr/bin/env bash
# up.sh - start a single-node Kubernetes cluster on this machine, offline,
# for the kubernetes package's tests. Idempotent: what runs is left alone,
# what is built is reused (see build.sh, which it calls first).
#
# It shares nothing with the machine's Docker Engine: its own containerd
# (Debian's, with CRI) on its own socket, root and state directories; its own
# CNI bridge "lading-k8s0" on 10.244.0.0/24 (not docker0, not 172.17/16) with
# no host address, no gateway, no masquerading, so no iptables rule is added
# and pod traffic never leaves the pod network; no kube-proxy (Services are
# not routable), no DNS. Every listener is on 127.0.0.1, on ports of its own:
#
#   etcd 32379 (peer 32380), kube-apiserver 36443, controller-manager 30257,
#   scheduler 30259, kubelet 30250 (healthz 30248)
#
# Every process it starts is recorded in $STATE/run/pids/*.pid; down.sh
# stops exactly those. The kubelet hard-codes a few paths outside $STATE,
# which down.sh removes again: /var/lib/kubelet/device-plugins,
# /var/log/containers/ (symbolic links), /var/lib/cni/results (entries of
# this network), /run/containerd/runc/k8s.io (runc state of the k8s.io
# namespace), and cgroups under kubepods/.
#
# The images: the sandbox (pause, from build.sh) and the offline test image
# lading-test/busybox:latest, exported from the Docker Engine when it has it
# and imported into containerd's k8s.io namespace (pods use it with pull
# policy IfNotPresent or Never: every registry points at a closed loopback
# port, so a pull fails at once).
#
# The apiserver and the kubelet run with the feature gate
# PodLogsQuerySplitStreams (alpha since 1.32), which lets the logs API return
# stdout and stderr apart: the kubernetes runner's LogStreams SPLIT needs it.
#
# It prints the admin kubeconfig's path last: $STATE/admin.kubeconfig.
# Env: LADING_K8S_DIR (state, default /var/tmp/lading-k8s), and those of
# build.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=$(bash "$here/build.sh" | tail -1)
S=${LADING_K8S_DIR:-/var/tmp/lading-k8s}
R=$S/run L=$S/logs C=$S/conf K=$S/pki B=$CACHE/bin
SOCK=$R/containerd/containerd.sock
APISERVER=https://127.0.0.1:36443
export PATH="$B:$PATH:/usr/sbin:/sbin" KUBECONFIG=$S/admin.kubeconfig
mkdir -p "$R/pids" "$L" "$C" "$K"
t0=$SECONDS
log() { echo "[k8s up +$((SECONDS - t0))s] $*"; }
waitfor() { # DESCRIPTION SECONDS COMMAND...: until COMMAND succeeds, or fail after SECONDS
  local what=$1 bound=$2; shift 2
  local deadline=$((SECONDS + bound))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "gave up waiting ${bound}s for $what; logs in $L"; exit 1; fi
    sleep 0.5
  done
}
running() { [ -f "$R/pids/$1.pid" ] && kill -0 "$(cat "$R/pids/$1.pid")" 2>/dev/null; }
start() { # NAME COMMAND...: start COMMAND in its own session unless NAME runs
  local name=$1; shift
  if running "$name"; then log "$name already running"; return; fi
  setsid "$@" >"$L/$name.log" 2>&1 </dev/null &
  echo $! >"$R/pids/$name.pid"
  log "started $name (pid $!)"
}

need=()
for tool in containerd runc openssl curl; do command -v $tool >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---- PKI and kubeconfigs (kept across runs: the admin kubeconfig stays valid)
if [ ! -f "$K/tokens.csv" ]; then
  (
    cd "$K"
    o() { openssl "$@" >/dev/null 2>&1; }
    o req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=lading-ci-ca"
    o req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    printf 'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1\nextendedKeyUsage=serverAuth\n' >apiserver.ext
    o x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile apiserver.ext
    o req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client"
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    o x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out kubelet-client.crt -days 3650 -extfile client.ext
    o genrsa -out sa.key 2048
    o rsa -in sa.key -pubout -out sa.pub
    tok() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
    ta=$(tok) tc=$(tok) ts=$(tok) tk=$(tok)
    printf '%s,admin,admin,"system:masters"\n%s,system:kube-controller-manager,kcm\n%s,system:kube-scheduler,sched\n%s,system:node:localhost,node-localhost,"system:nodes"\n' "$ta" "$tc" "$ts" "$tk" >tokens.csv.tmp
    kc() {
      printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: lading-ci\n  cluster: {server: "%s", certificate-authority: "%s"}\nusers:\n- name: u\n  user: {token: "%s"}\ncontexts:\n- name: lading-ci\n  context: {cluster: lading-ci, user: u, namespace: default}\ncurrent-context: lading-ci\n' \
        "$APISERVER" "$K/ca.crt" "$2" >"$S/$1.kubeconfig"
      chmod 600 "$S/$1.kubeconfig"
    }
    kc admin "$ta"; kc controller-manager "$tc"; kc scheduler "$ts"; kc kubelet "$tk"
    chmod 600 ./*.key tokens.csv.tmp
    mv tokens.csv.tmp tokens.csv
  )
  log "PKI made"
fi

# ---- configuration (rewritten each run: cheap, and follows this script)
mkdir -p "$S/cni/net.d" "$R/containerd"
cat >"$C/containerd.toml" <<TOML
version = 2
root = "$R/containerd/root"
state = "$R/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$R/containerd/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$R/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  # root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj (pause, Guaranteed pods) would fail in runc
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  # offline: every registry points at a closed loopback port, so a pull fails at once
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$C/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CACHE/cni"
    conf_dir = "$S/cni/net.d"
    max_conf_num = 1
TOML
for h in _default docker.io registry.k8s.io k8s.gcr.io gcr.io quay.io ghcr.io mcr.microsoft.com public.ecr.aws; do
  mkdir -p "$C/certs.d/$h"
  # containerd 1.6 ignores a hosts.toml with only "server =": the [host] section is what applies
  printf 'server = "http://127.0.0.1:1"\n[host."http://127.0.0.1:1"]\n  capabilities = ["pull", "resolve"]\n' >"$C/certs.d/$h/hosts.toml"
done
# No host address on the bridge (this kernel has no dummy links either): no route out of the pod network.
cat >"$S/cni/net.d/10-lading.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "lading-k8s", "plugins": [
  {"type": "bridge", "bridge": "lading-k8s0", "isGateway": false, "isDefaultGateway": false, "ipMasq": false, "hairpinMode": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [], "dataDir": "$R/cni-ipam"}}]}
JSON
echo 'nameserver 127.0.0.1' >"$C/resolv.conf"
cat >"$C/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 30250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 30248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $K/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCK
podLogsDir: $R/pod-logs
resolvConf: $C/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
# The logs API loses what a follower has not read when the kubelet rotates a
# container's log twice (every containerLogMaxSize): room for the flood cases.
containerLogMaxSize: 1Gi
containerLogMaxFiles: 2
featureGates: {PodLogsQuerySplitStreams: true}
# the kubelet would add KUBE-FIREWALL chains to the host's INPUT and OUTPUT
makeIPTablesUtilChains: false
YAML

# ---- a mount namespace of its own for containerd (with its shims and
# containers) and the kubelet: their mounts stay out of the host's table, and
# the kernel tunables the kubelet insists on read as it wants there without
# being written. The kubelet writes vm.overcommit_memory=1, kernel.panic=10,
# kernel.panic_on_oops=1 (and three more) to the host unless it reads them
# so already: here each is a file bind-mounted over its /proc/sys entry, in
# this namespace only.
NS=$R/mntns
if ! nsenter --mount="$NS" true 2>/dev/null; then
  touch "$NS"
  unshare --mount="$NS" --propagation private true
  mkdir -p "$C/sysctl"
  for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
    f=${kv%%=*}
    echo "${kv#*=}" >"$C/sysctl/${f//\//.}"
    nsenter --mount="$NS" mount --bind "$C/sysctl/${f//\//.}" "/proc/sys/$f"
  done
  log "mount namespace made ($NS)"
fi

# ---- etcd, containerd
start etcd "$B/etcd" --name lading-ci --data-dir "$R/etcd" \
  --listen-client-urls http://127.0.0.1:32379 --advertise-client-urls http://127.0.0.1:32379 \
  --listen-peer-urls http://127.0.0.1:32380 --initial-advertise-peer-urls http://127.0.0.1:32380 \
  --initial-cluster lading-ci=http://127.0.0.1:32380 --initial-cluster-state new \
  --auto-compaction-retention 10m --quota-backend-bytes 2147483648
start containerd nsenter --mount="$NS" containerd --config "$C/containerd.toml"
waitfor etcd 60 curl -sf http://127.0.0.1:32379/health

# ---- kube-apiserver
start kube-apiserver "$B/kube-apiserver" --etcd-servers=http://127.0.0.1:32379 \
  --bind-address=127.0.0.1 --secure-port=36443 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
  --tls-cert-file="$K/apiserver.crt" --tls-private-key-file="$K/apiserver.key" --client-ca-file="$K/ca.crt" \
  --token-auth-file="$K/tokens.csv" --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$K/sa.pub" --service-account-signing-key-file="$K/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
  --kubelet-client-certificate="$K/kubelet-client.crt" --kubelet-client-key="$K/kubelet-client.key" \
  --kubelet-preferred-address-types=Hostname,InternalIP --profiling=false \
  --feature-gates=PodLogsQuerySplitStreams=true

# ---- images into containerd's k8s.io namespace
waitfor "containerd's socket" 60 ctr -a "$SOCK" version
ctr -a "$SOCK" -n k8s.io images import "$CACHE/images/pause.tar" >/dev/null
if command -v docker >/dev/null && docker image inspect lading-test/busybox:latest >/dev/null 2>&1; then
  id=$(docker image inspect -f '{{.Id}}' lading-test/busybox:latest)
  if [ "$(cat "$R/busybox.id" 2>/dev/null)" != "$id" ] || ! ctr -a "$SOCK" -n k8s.io images check name==docker.io/lading-test/busybox:latest | grep -q complete; then
    docker save lading-test/busybox:latest | ctr -a "$SOCK" -n k8s.io images import - >/dev/null
    echo "$id" >"$R/busybox.id"
    log "imported lading-test/busybox:latest from the Docker Engine"
  fi
else
  log "the Docker Engine has no lading-test/busybox:latest (go run ./internal/cmd/testimage makes it): not imported"
fi
waitfor "kube-apiserver /readyz" 180 kubectl get --raw /readyz

# ---- controller-manager, scheduler, kubelet
mkdir -p "$R/kcm" "$R/sched" "$R/kubelet" "$R/pod-logs"
start kube-controller-manager "$B/kube-controller-manager" --kubeconfig="$S/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$S/controller-manager.kubeconfig" --authorization-kubeconfig="$S/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=30257 --cert-dir="$R/kcm" --leader-elect=false --use-service-account-credentials=true \
  --service-account-private-key-file="$K/sa.key" --root-ca-file="$K/ca.crt" \
  --cluster-signing-cert-file="$K/ca.crt" --cluster-signing-key-file="$K/ca.key" --profiling=false
start kube-scheduler "$B/kube-scheduler" --kubeconfig="$S/scheduler.kubeconfig" \
  --authentication-kubeconfig="$S/scheduler.kubeconfig" --authorization-kubeconfig="$S/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=30259 --cert-dir="$R/sched" --leader-elect=false --profiling=false
start kubelet nsenter --mount="$NS" "$B/kubelet" --config="$C/kubelet.yaml" --kubeconfig="$S/kubelet.kubeconfig" \
  --root-dir="$R/kubelet" --cert-dir="$R/kubelet/pki" --hostname-override=localhost
waitfor "node localhost to register" 120 kubectl get node localhost
waitfor "node localhost to be Ready" 180 kubectl wait --for=condition=Ready node/localhost --timeout=5s
waitfor "the default service account" 120 kubectl get serviceaccount default -n default
waitfor "the kube-root-ca.crt config map" 120 kubectl get configmap kube-root-ca.crt -n default
log "cluster ready"
echo "$KUBECONFIG"
