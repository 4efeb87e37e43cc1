#!/usr/bin/env bash
# The cluster tests on kind, for machines with Docker: the same suite `make test` runs on the
# local cluster (e2e/localcluster), pointed at a kind cluster through `make e2e`.
#   bash e2e/kind.sh            # create a cluster, build and load the image, run the suite, delete the cluster
#   KEEP=1 bash e2e/kind.sh     # keep the cluster afterwards
# Needs: docker, kind. kubectl and helm come from e2e/build.sh, as for the local cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${CLUSTER:-kubetune-e2e}
IMAGE=${KUBETUNE_E2E_IMAGE:-localhost/kubetune:dev}
KUBECONFIG_FILE=$(mktemp)

cleanup() { rm -f "$KUBECONFIG_FILE"; [ -n "${KEEP:-}" ] || kind delete cluster --name "$CLUSTER"; }
trap cleanup EXIT

bash e2e/build.sh
source e2e/versions.env
export PATH="$HOME/.cache/kubetune/kubernetes-$KUBERNETES_VERSION/bin:$HOME/.cache/kubetune/helm-$HELM_VERSION/bin:$PATH"

kind create cluster --name "$CLUSTER" --wait 120s --kubeconfig "$KUBECONFIG_FILE"
docker build -f operator/Dockerfile -t "$IMAGE" .
docker run --rm "$IMAGE" --version
kind load docker-image "$IMAGE" --name "$CLUSTER"
# The chart and the examples name the published image; on kind it is this checkout's build.
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/kubetune/Chart.yaml)
docker tag "$IMAGE" "ghcr.io/kubetune/kubetune:$APP_VERSION"
kind load docker-image "ghcr.io/kubetune/kubetune:$APP_VERSION" --name "$CLUSTER"

KUBETUNE_E2E_KUBECONFIG="$KUBECONFIG_FILE" KUBETUNE_E2E_IMAGE="$IMAGE" make e2e
echo "kind end to end: passed"
