#!/usr/bin/env bash
# kubetune end to end on kind, for machines with Docker (CI here has none: tests/cluster/install
# does everything below except kind and docker, on the local control plane).
#   bash e2e/kind.sh            # create a cluster, install, run the random example, delete the cluster
#   KEEP=1 bash e2e/kind.sh     # keep the cluster afterwards
# Needs: docker, kind, kubectl, helm.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${CLUSTER:-kubetune-e2e}
IMAGE=ghcr.io/kubetune/kubetune:$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

cleanup() { [ -n "${KEEP:-}" ] || kind delete cluster --name "$CLUSTER"; }
trap cleanup EXIT

kind create cluster --name "$CLUSTER" --wait 120s
docker build -f operator/Dockerfile -t "$IMAGE" .
docker run --rm "$IMAGE" --version
kind load docker-image "$IMAGE" --name "$CLUSTER"

helm install kubetune charts/kubetune --namespace kubetune-system --create-namespace \
    --set image.pullPolicy=Never --wait --timeout 180s
kubectl -n kubetune-system rollout status deploy/kubetune-operator

kubectl apply -f manifests/examples/random.yaml
kubectl wait hptj/digits-random --for=jsonpath='{.status.hyperParameterTuningJobStatus}'=Completed --timeout=900s
kubectl get hptj digits-random
best=$(kubectl get hptj digits-random -o jsonpath='{.status.bestTrainingJob.finalObjectiveValue}')
echo "best val_accuracy: $best"
python3 -c "import sys; sys.exit(0 if float('$best') > 0.8 else 1)"

helm uninstall kubetune --namespace kubetune-system --wait
kubectl get crd hyperparametertuningjobs.kubetune.io >/dev/null   # Helm keeps CRDs
echo "kind end to end: passed"
