#!/usr/bin/env bash
# down.sh - stop the cluster up.sh started: exactly the processes recorded
# in $STATE/run/pids, after the kubelet has torn its pods down, then the
# containers, shims, mounts, cgroups, bridge and files outside $STATE it
# left. The built artifacts (build.sh's cache) and the PKI are kept;
# `down.sh --purge` also deletes the cluster's state (etcd data, images
# imported into containerd). Safe to run when nothing runs.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
S=${LADING_K8S_DIR:-/var/tmp/lading-k8s}
R=$S/run SOCK=$S/run/containerd/containerd.sock
KV=${KV:-v1.36.3} ETCDV=${ETCDV:-v3.6.16} CNIV=${CNIV:-v1.10.0}
B=${LADING_K8S_CACHE:-/var/cache/lading-k8s}/k8s-$KV-etcd-$ETCDV-cni-$CNIV/bin
export PATH="$B:$PATH:/usr/sbin:/sbin" KUBECONFIG=$S/admin.kubeconfig
running() { [ -f "$R/pids/$1.pid" ] && kill -0 "$(cat "$R/pids/$1.pid")" 2>/dev/null; }
stop() {
  local f=$R/pids/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "[k8s down] stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

# The kubelet tears pods down through CRI (and CNI DEL) while all still runs.
if running kubelet && [ -x "$B/kubectl" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
  kubectl delete pods --all -A --grace-period=0 --force --wait=false >/dev/null 2>&1
  for _ in $(seq 1 40); do [ -z "$(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null)" ] && break; sleep 0.5; done
fi
stop kubelet; stop kube-scheduler; stop kube-controller-manager
# What is left in our containerd, while it still runs.
if [ -S "$SOCK" ] && running containerd; then
  for t in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do ctr -a "$SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  sleep 1
  for t in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do ctr -a "$SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1; done
  for c in $(ctr -a "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do ctr -a "$SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1; done
fi
stop kube-apiserver; stop containerd; stop etcd
# Processes left in the kubelet's cgroups, and the shims of our containerd
# (found by our socket in their command line; the Docker Engine's are not).
for f in $(find /sys/fs/cgroup/pids/kubepods -name cgroup.procs 2>/dev/null); do
  for pid in $(cat "$f"); do kill -KILL "$pid" 2>/dev/null && echo "[k8s down] killed pod process $pid"; done
done
for d in /proc/[0-9]*; do
  c=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
  case "$c" in *containerd-shim*"-address $SOCK "*) kill -KILL "${d#/proc/}" 2>/dev/null && echo "[k8s down] killed shim ${d#/proc/}" ;; esac
done
sleep 1
# Mounts under run/, deepest first: in the host's table only the mount
# namespace's own file (up.sh), whose mounts go with it.
awk -v r="$R" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m"
done
# The kubelet's cgroups (cgroupfs driver), our bridge, runc's state of the k8s.io namespace.
for c in /sys/fs/cgroup/*/kubepods; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
ip link show lading-k8s0 >/dev/null 2>&1 && ip link del lading-k8s0 && echo "[k8s down] deleted bridge lading-k8s0"
[ -d /run/containerd/runc/k8s.io ] && rmdir /run/containerd/runc/k8s.io 2>/dev/null
# containerd's go-cni caches results in /var/lib/cni/results; the kubelet hard-codes its device-plugins dir and /var/log/containers.
for f in /var/lib/cni/results/lading-k8s-*-eth0; do
  [ -e "$f" ] || continue
  id=${f#/var/lib/cni/results/lading-k8s-}; id=${id%-eth0}
  rm -f "$f" "/var/lib/cni/results/cni-loopback-$id-lo"
done
rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null
rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/DEPRECATION
rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null
if [ -d /var/log/containers ]; then find /var/log/containers -lname "$R/*" -delete; rmdir /var/log/containers 2>/dev/null; fi
if [ "${1:-}" = --purge ]; then rm -rf "$R" && echo "[k8s down] purged $R"; fi
echo "[k8s down] done"
