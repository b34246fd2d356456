#!/usr/bin/env bash
# Prints the kubeconfig Secret the primary needs for one remote cluster, built from the
# istio-operator-remote token that deploy/remote created there:
#   deploy/remote/kubeconfig-secret.sh REMOTE-CONTEXT REMOTEISTIO-NAME [NAMESPACE] \
#     | kubectl --context PRIMARY apply -f -
# The Secret is named after the RemoteIstio and lives in its namespace (default
# istio-system); its one key is also that name, which Istio's pilot uses as the
# cluster ID.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,8p' "$0" >&2
  exit 2
fi
context=$1 name=$2 namespace=${3:-istio-system}
remote=(kubectl --context "$context" --namespace istio-operator)

token=$("${remote[@]}" get secret istio-operator-remote-token -o jsonpath='{.data.token}' | base64 -d)
ca=$("${remote[@]}" get secret istio-operator-remote-token -o jsonpath='{.data.ca\.crt}')
server=$(kubectl config view --raw --minify --context "$context" -o jsonpath='{.clusters[0].cluster.server}')
if [ -z "$token" ] || [ -z "$ca" ]; then
  echo "no token yet in istio-operator/istio-operator-remote-token on $context" >&2
  exit 1
fi

kubeconfig=$(cat <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: $name
    cluster:
      server: $server
      certificate-authority-data: $ca
users:
  - name: istio-operator-remote
    user:
      token: $token
contexts:
  - name: $name
    context:
      cluster: $name
      user: istio-operator-remote
current-context: $name
KUBECONFIG
)

kubectl create secret generic "$name" --namespace "$namespace" \
  --from-literal="$name=$kubeconfig" --dry-run=client -o yaml
