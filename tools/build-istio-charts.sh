#!/usr/bin/env bash
# Fills the istiod-era chart catalogue: for each version below, the Helm charts and
# profiles Istio embeds in its Go module (istio.io/istio, package manifests), written by
# tools/istio-charts into <catalogue>/<version>/, outside the repo. What is there is
# skipped. ISTIO_OPERATOR_CHARTS_DIR names another catalogue directory.
#
# The Go module proxy serves istio.io/istio here only at development snapshots of 1.31,
# so two of them stand in for two releases (see docs/istiod-charts.md):
#   1.31.0 = istio.io/istio v0.0.0-20260423205519-b01690e6db7d (tools/istio-charts/1.31.0.mod)
#   1.31.1 = istio.io/istio v0.0.0-20260827124520-eed52ebb66ad (tools/istio-charts/go.mod)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CATALOGUE=${ISTIO_OPERATOR_CHARTS_DIR:-"${XDG_CACHE_HOME:-$HOME/.cache}/istio-operator/istio-charts"}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

# fill VERSION MODFILE: writes one version of the catalogue unless present.
fill() {
  local version=$1 modfile=$2 target="$CATALOGUE/$1"
  if [ -f "$target/SOURCE" ]; then
    echo "= istio charts $version: cached in $target"
    return
  fi
  rm -rf "$target.partial"
  (cd "$here/istio-charts" && go run -modfile="$modfile" . "$target.partial")
  rm -rf "$target"
  mv "$target.partial" "$target"
  echo "+ istio charts $version: $(cat "$target/SOURCE") in $target"
}

mkdir -p "$CATALOGUE"
fill 1.31.0 1.31.0.mod
fill 1.31.1 go.mod
