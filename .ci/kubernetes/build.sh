#!/usr/bin/env bash
# build.sh - the artifacts a single-node Kubernetes cluster needs, built
# offline (Go module proxy only) into a cache keyed by version, so a later
# run finds them and builds nothing:
#
#   $CACHE/bin/      kube-apiserver kube-controller-manager kube-scheduler
#                    kubelet kubectl (Kubernetes $KV) and etcd ($ETCDV)
#   $CACHE/cni/      CNI plugins bridge, host-local, loopback ($CNIV)
#   $CACHE/images/   pause.tar: an OCI archive of a tiny Go pause program
#
# Kubernetes is built through a wrapper module that requires
# k8s.io/kubernetes $KV and replaces each k8s.io staging module (./staging/...
# in its go.mod) with the published $SV. The Go build and module caches are
# the machine's own (go env GOCACHE GOMODCACHE), so a warm machine rebuilds in
# seconds. The build is CPU heavy (8.5 min on 2 cores from an empty cache).
# Env: LADING_K8S_CACHE (default /var/cache/lading-k8s), KV, SV, ETCDV, CNIV.
set -euo pipefail
KV=${KV:-v1.36.3} SV=${SV:-v0.36.3} ETCDV=${ETCDV:-v3.6.16} CNIV=${CNIV:-v1.10.0}
CACHE=${LADING_K8S_CACHE:-/var/cache/lading-k8s}/k8s-$KV-etcd-$ETCDV-cni-$CNIV
export PATH="$PATH:/usr/local/go/bin" CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
B=$CACHE/bin
mkdir -p "$B" "$CACHE/cni" "$CACHE/images" "$CACHE/build"
log() { echo "[k8s build] $*"; }

have_k8s() { for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do [ -x "$B/$c" ] || return 1; done; }

if ! have_k8s; then
  log "building Kubernetes $KV (CPU heavy; log in $CACHE/build/k8s.log)"
  D=$CACHE/build/k8s; mkdir -p "$D"
  (
    cd "$D"
    if ! grep -qs "k8s.io/kubernetes $KV" go.mod; then
      go mod download k8s.io/kubernetes@"$KV"
      modfile=$(go mod download -json k8s.io/kubernetes@"$KV" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
      {
        printf 'module lading.ci/k8s\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KV"
        grep -oE '^\s+k8s.io/[a-z0-9-]+ => ./staging' "$modfile" | awk -v sv="$SV" '{print "\t"$1" => "$1" "sv}'
        echo ')'
      } > go.mod
      {
        printf '//go:build tools\n\npackage tools\n\nimport (\n'
        for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' $c; done
        echo ')'
      } > tools.go
      go mod tidy
    fi
    V=k8s.io/component-base/version
    MAJ=$(echo "${KV#v}" | cut -d. -f1) MIN=$(echo "${KV#v}" | cut -d. -f2)
    go build -trimpath -ldflags "-s -w -X $V.gitMajor=$MAJ -X $V.gitMinor=$MIN -X $V.gitVersion=$KV -X $V.gitTreeState=clean" \
      -o "$B/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl
  ) > "$CACHE/build/k8s.log" 2>&1 || { tail -30 "$CACHE/build/k8s.log"; exit 1; }
  log "Kubernetes $KV built"
fi

# etcd from source: Debian's 3.4 logs compaction-related cache errors after a
# few minutes under a 1.36 apiserver.
if [ ! -x "$B/etcd" ]; then
  log "building etcd $ETCDV"
  D=$CACHE/build/etcd; mkdir -p "$D"
  (
    cd "$D"
    {
      printf 'module lading.ci/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n\nreplace (\n' "$ETCDV"
      for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do printf '\tgo.etcd.io/etcd/%s => go.etcd.io/etcd/%s %s\n' $m $m "$ETCDV"; done
      echo ')'
    } > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
    go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$B/etcd" go.etcd.io/etcd/server/v3
  ) > "$CACHE/build/etcd.log" 2>&1 || { tail -30 "$CACHE/build/etcd.log"; exit 1; }
  log "etcd $ETCDV built"
fi

if [ ! -x "$CACHE/cni/bridge" ] || [ ! -x "$CACHE/cni/host-local" ] || [ ! -x "$CACHE/cni/loopback" ]; then
  log "building CNI plugins $CNIV"
  D=$CACHE/build/cni; mkdir -p "$D"
  (
    cd "$D"
    printf 'module lading.ci/cni\n\ngo 1.26.0\n\nrequire github.com/containernetworking/plugins %s\n' "$CNIV" > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/containernetworking/plugins/plugins/main/bridge"\n' > tools.go
    go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$CACHE/cni/" github.com/containernetworking/plugins/plugins/main/bridge \
      github.com/containernetworking/plugins/plugins/ipam/host-local github.com/containernetworking/plugins/plugins/main/loopback
  ) > "$CACHE/build/cni.log" 2>&1 || { tail -30 "$CACHE/build/cni.log"; exit 1; }
  log "CNI plugins built"
fi

# The sandbox ("pause") image: no registry, so a tiny Go program in an OCI
# archive that `ctr images import` takes.
if [ ! -f "$CACHE/images/pause.tar" ]; then
  D=$CACHE/build/pause W=$(mktemp -d); mkdir -p "$D" "$W/root" "$W/oci/blobs/sha256"
  cat > "$D/main.go" <<'GO'
// Command pause is the pod sandbox process: it waits for INT or TERM and
// reaps the children it inherits.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  printf 'module lading.ci/pause\n\ngo 1.26.0\n' > "$D/go.mod"
  (cd "$D" && go build -trimpath -ldflags "-s -w" -o "$W/root/pause" .)
  tar -C "$W/root" --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -cf "$W/layer.tar" .
  diffid=$(sha256sum "$W/layer.tar" | cut -d' ' -f1)
  gzip -n -c "$W/layer.tar" > "$W/layer.tgz"
  ld=$(sha256sum "$W/layer.tgz" | cut -d' ' -f1) ls=$(stat -c %s "$W/layer.tgz"); mv "$W/layer.tgz" "$W/oci/blobs/sha256/$ld"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diffid" > "$W/c.json"
  cd_=$(sha256sum "$W/c.json" | cut -d' ' -f1) cs=$(stat -c %s "$W/c.json"); mv "$W/c.json" "$W/oci/blobs/sha256/$cd_"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cd_" "$cs" "$ld" "$ls" > "$W/m.json"
  md=$(sha256sum "$W/m.json" | cut -d' ' -f1) ms=$(stat -c %s "$W/m.json"); mv "$W/m.json" "$W/oci/blobs/sha256/$md"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"registry.k8s.io/pause:3.10","org.opencontainers.image.ref.name":"3.10"}}]}' "$md" "$ms" > "$W/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$W/oci/oci-layout"
  tar -C "$W/oci" -cf "$CACHE/images/pause.tar.tmp" oci-layout index.json blobs
  mv "$CACHE/images/pause.tar.tmp" "$CACHE/images/pause.tar"; rm -rf "$W"
  log "pause image built"
fi
echo "$CACHE"
