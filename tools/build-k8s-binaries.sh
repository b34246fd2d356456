#!/usr/bin/env bash
# Builds the Kubernetes binaries the local clusters run (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, kwokctl) from
# the pinned Go modules under tools/, into a versioned cache outside the repo.
# What is already built is skipped. With KUBEBUILDER_ASSETS pointing at a
# directory of ready binaries, nothing is built at all.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
BIN_DIR=${ISTIO_OPERATOR_K8S_BIN_DIR:-"${XDG_CACHE_HOME:-$HOME/.cache}/istio-operator/k8s-bin/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"}

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS: using its binaries, building nothing"
  exit 0
fi

mkdir -p "$BIN_DIR"

# build NAME MODULE_DIR PACKAGE [LDFLAGS]: builds one binary unless present.
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-"-s -w"}
  if [ -x "$BIN_DIR/$name" ]; then
    echo "= $name: cached in $BIN_DIR"
    return
  fi
  echo "+ $name: building (this can take several minutes)"
  local start=$SECONDS log
  log=$(mktemp)
  if ! (cd "$here/$dir" && go build -trimpath -tags selinux,notest,grpcnotrace \
          -ldflags "$ldflags" -o "$BIN_DIR/$name.partial" "$pkg") >"$log" 2>&1; then
    echo "! $name: build FAILED in $dir ($pkg):" >&2
    cat "$log" >&2
    rm -f "$log" "$BIN_DIR/$name.partial"
    exit 1
  fi
  rm -f "$log"
  mv "$BIN_DIR/$name.partial" "$BIN_DIR/$name"
  echo "  $name: built in $((SECONDS - start)) s"
}

kube_ldflags() {
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local flags="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags="$flags -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    flags="$flags -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

total=$SECONDS
build etcd etcd . "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=gomod-$ETCD_VERSION"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build kwokctl kwok sigs.k8s.io/kwok/cmd/kwokctl
build helm helm helm.sh/helm/v3/cmd/helm "-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0 -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build "$c" kube "k8s.io/kubernetes/cmd/$c" "$(kube_ldflags)"
done

# kwok's default stages live in its module; local clusters add a LoadBalancer stage to them.
if [ ! -s "$BIN_DIR/kwok-default-stages.yaml" ]; then
  src=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    cat "$src/$f"; printf '\n---\n'
  done > "$BIN_DIR/kwok-default-stages.yaml.partial"
  mv "$BIN_DIR/kwok-default-stages.yaml.partial" "$BIN_DIR/kwok-default-stages.yaml"
fi
echo "k8s binaries ready in $BIN_DIR ($((SECONDS - total)) s)"
