#!/usr/bin/env bash
# Builds etcd, the Kubernetes control plane and node components (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy), kubectl, helm
# and the pod sandbox image from the Go module proxy and caches them under ~/.cache/kubetune/<name>-<version>/.
#
# Why from source: CI machines reach package registries only (no release
# downloads, no Docker), and the Go module proxy serves every one of these.
# Idempotent: a cache entry is complete only once its stamp file is written,
# so a warm run takes a second and an interrupted cold run resumes cleanly.
#
# Env: KUBETUNE_CACHE (default ~/.cache/kubetune), GOFLAGS/GOMAXPROCS as usual.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${HERE}/versions.env"
CACHE="${KUBETUNE_CACHE:-${HOME}/.cache/kubetune}"
export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-buildvcs=false -trimpath"
export CGO_ENABLED=0
# Two cores on CI: one build at a time, two compile jobs.
BUILD_P="${KUBETUNE_BUILD_P:-2}"

log() { printf '[e2e/build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Host tools the local cluster's nodes need; a fresh CI machine lacks most of
# them. Debian's packages: containerd 1.6 and runc run the containers, the CNI
# plugins (bridge, host-local) wire pods, iptables and conntrack serve
# kube-proxy, buildah and debootstrap build the image (operator/build-image.sh).
ensure_host_tools() {
  local missing=() cmd pkg
  local -A wanted=(
    [ip]=iproute2 [unshare]=util-linux [nsenter]=util-linux [flock]=util-linux [openssl]=openssl
    [containerd]=containerd [ctr]=containerd [runc]=runc [iptables]=iptables [conntrack]=conntrack
    [buildah]=buildah [debootstrap]=debootstrap
  )
  for cmd in "${!wanted[@]}"; do
    command -v "${cmd}" >/dev/null || missing+=("${wanted[${cmd}]}")
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || missing+=(containernetworking-plugins)
  if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing missing packages: ${missing[*]}"
    # Another apt run (a second test session) may hold the lock: wait for it instead of failing.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's golang-go is far older than these modules need (go 1.24+).
  if ! command -v go >/dev/null; then
    log "error: no Go toolchain on PATH (need go >= 1.24)"; exit 1
  fi
}

# complete DIR BIN... -> true when DIR holds every BIN and its stamp.
complete() {
  local dir="$1"; shift
  [[ -f "${dir}/.complete" ]] || return 1
  local b; for b in "$@"; do [[ -x "${dir}/bin/${b}" ]] || return 1; done
}

# Runs a build step, timing it, with a line a minute so a long compile shows life.
timed() {
  local start=$SECONDS ticker
  ( while sleep 60; do log "  $1: still compiling ($((SECONDS - start))s)"; done ) &
  ticker=$!
  "$@" || { kill "${ticker}" 2>/dev/null; return 1; }
  kill "${ticker}" 2>/dev/null; wait "${ticker}" 2>/dev/null || true
  log "  done in $((SECONDS - start))s"
}

build_etcd() {
  local dir="${CACHE}/etcd-${ETCD_VERSION}"
  if complete "${dir}" etcd; then log "etcd ${ETCD_VERSION}: cached"; return; fi
  log "etcd ${ETCD_VERSION}: building (module go.etcd.io/etcd/server/v3)"
  rm -rf "${dir}"; mkdir -p "${dir}/src" "${dir}/bin"
  # The server module's own replace directives point into etcd's repo; a
  # wrapper module requires it as an ordinary dependency instead.
  cat > "${dir}/src/go.mod" <<GOMOD
module kubetune.local/build/etcd

go 1.24.0

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}

tool go.etcd.io/etcd/server/v3
GOMOD
  (cd "${dir}/src" && go mod tidy \
    && go build -p "${BUILD_P}" -ldflags "-s -w" -o "${dir}/bin/etcd" go.etcd.io/etcd/server/v3)
  "${dir}/bin/etcd" --version | head -1 >&2
  echo "${ETCD_VERSION}" > "${dir}/.complete"
}

# The control plane, the node components and kubectl: one module, one build.
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

build_kubernetes() {
  local dir="${CACHE}/kubernetes-${KUBERNETES_VERSION}"
  if complete "${dir}" kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; then
    log "kubernetes ${KUBERNETES_VERSION}: cached"; return
  fi
  log "kubernetes ${KUBERNETES_VERSION}: building ${KUBE_COMMANDS[*]} (slow: ~1M lines of Go)"
  rm -rf "${dir}"; mkdir -p "${dir}/src" "${dir}/bin"
  local info modfile
  info="$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}")"
  modfile="$(sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' <<<"${info}")"
  # Staging modules are required at v0.0.0 and replaced by ./staging paths
  # that only exist in kubernetes' own repo; each has a published v0.MINOR.PATCH.
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  {
    printf 'module kubetune.local/build/kubernetes\n\ngo 1.24.0\n\n'
    printf 'godebug default=go1.24\n\n'
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "${KUBERNETES_VERSION}"
    awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// { print $1 }' "${modfile}" | sort -u |
      while read -r mod; do printf '\t%s => %s %s\n' "${mod}" "${mod}" "${staging_version}"; done
    printf ')\n\ntool (\n'
    printf '\tk8s.io/kubernetes/cmd/%s\n' "${KUBE_COMMANDS[@]}"
    printf ')\n'
  } > "${dir}/src/go.mod"
  local major minor ldflags date
  major="${KUBERNETES_VERSION#v}"; major="${major%%.*}"
  minor="${KUBERNETES_VERSION#v*.}"; minor="${minor%%.*}"
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags="-s -w"
  local pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION} -X ${pkg}.gitMajor=${major}"
    ldflags+=" -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${date}"
  done
  (cd "${dir}/src" && go mod tidy \
    && go build -p "${BUILD_P}" -ldflags "${ldflags}" -o "${dir}/bin/" \
         "${KUBE_COMMANDS[@]/#/k8s.io/kubernetes/cmd/}")
  "${dir}/bin/kube-apiserver" --version >&2
  echo "${KUBERNETES_VERSION}" > "${dir}/.complete"
}

build_helm() {
  local dir="${CACHE}/helm-${HELM_VERSION}"
  if complete "${dir}" helm; then log "helm ${HELM_VERSION}: cached"; return; fi
  log "helm ${HELM_VERSION}: building (module helm.sh/helm/v3)"
  rm -rf "${dir}"; mkdir -p "${dir}/src" "${dir}/bin"
  cat > "${dir}/src/go.mod" <<GOMOD
module kubetune.local/build/helm

go 1.24.0

require helm.sh/helm/v3 ${HELM_VERSION}

tool helm.sh/helm/v3/cmd/helm
GOMOD
  (cd "${dir}/src" && go mod tidy \
    && go build -p "${BUILD_P}" \
         -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
         -o "${dir}/bin/helm" helm.sh/helm/v3/cmd/helm)
  "${dir}/bin/helm" version --short >&2
  echo "${HELM_VERSION}" > "${dir}/.complete"
}

# The pod sandbox image ("pause"): a static Go program that holds the pod's
# namespaces and exits on SIGTERM/SIGINT. No registry is reachable, so it is
# built here and packed as a docker-archive for `ctr images import`; keyed by
# the hash of its sources, so an edit rebuilds it.
build_pause() {
  local key dir
  key="$(cat "${HERE}/pause/go.mod" "${HERE}/pause/main.go" "${HERE}/pause/pack.py" | sha256sum | cut -c1-12)"
  dir="${CACHE}/pause-${key}"
  if [[ -f "${dir}/.complete" && -f "${dir}/pause.tar" ]]; then log "pause image: cached"; return; fi
  log "pause image: building"
  rm -rf "${dir}"; mkdir -p "${dir}"
  (cd "${HERE}/pause" && go build -ldflags "-s -w" -o "${dir}/pause" .)
  python3 "${HERE}/pause/pack.py" "${dir}/pause" "${PAUSE_IMAGE}" "${dir}/pause.tar"
  echo "${key}" > "${dir}/.complete"
  ln -sfn "${dir}" "${CACHE}/pause"
}

# Kueue and JobSet: controllers the addons tests run on demand as host processes
# (LocalCluster.start_kueue / start_jobset, e2e/localcluster/addons.py).
# Neither module has replace directives, so a plain wrapper module builds them.
# build_addon NAME MODULE VERSION PACKAGE -> ${CACHE}/NAME-VERSION/bin/NAME
build_addon() {
  local name="$1" module="$2" version="$3" package="$4"
  local dir="${CACHE}/${name}-${version}"
  if complete "${dir}" "${name}"; then log "${name} ${version}: cached"; return; fi
  log "${name} ${version}: building (module ${module}, package ${package})"
  rm -rf "${dir}"; mkdir -p "${dir}/src" "${dir}/bin"
  cat > "${dir}/src/go.mod" <<GOMOD
module kubetune.local/build/${name}

go 1.26.0

require ${module} ${version}

tool ${package}
GOMOD
  (cd "${dir}/src" && go mod tidy \
    && go build -p "${BUILD_P}" \
         -ldflags "-s -w -X ${module}/pkg/version.GitVersion=${version} -X ${module}/pkg/version.GitCommit=module-proxy" \
         -o "${dir}/bin/${name}" "${package}")
  echo "${version}" > "${dir}/.complete"
}

# The manifests the harness installs with an addon, from its module's
# config/components: the CRDs with their kustomization (which names the CRDs
# that get a conversion webhook), the RBAC and the webhook configurations.
# A stamp of their own, so a change here recopies them without a rebuild.
# addon_manifests NAME MODULE VERSION -> ${CACHE}/NAME-VERSION/manifests/{crd,rbac,webhook}
addon_manifests() {
  local name="$1" module="$2" version="$3"
  local dir="${CACHE}/${name}-${version}" src part
  [[ -f "${dir}/manifests/.complete" ]] && return
  src="$(cd "${dir}/src" && go list -m -f '{{.Dir}}' "${module}")"
  rm -rf "${dir}/manifests"; mkdir -p "${dir}/manifests"
  for part in crd rbac webhook; do cp -r "${src}/config/components/${part}" "${dir}/manifests/${part}"; done
  chmod -R u+w "${dir}/manifests"
  echo "${version}" > "${dir}/manifests/.complete"
}

main() {
  local start=$SECONDS
  ensure_host_tools
  mkdir -p "${CACHE}"
  # One build at a time, even when two test runs start together.
  exec 9>"${CACHE}/.build.lock"
  flock 9
  timed build_etcd
  timed build_kubernetes
  timed build_helm
  timed build_pause
  flock -u 9
  # The addons under a lock of their own: a run that needs only the core
  # (an older checkout, say) never waits for their compile.
  exec 8>"${CACHE}/.build-addons.lock"
  flock 8
  timed build_addon kueue sigs.k8s.io/kueue "${KUEUE_VERSION}" sigs.k8s.io/kueue/cmd/kueue
  timed build_addon jobset sigs.k8s.io/jobset "${JOBSET_VERSION}" sigs.k8s.io/jobset
  addon_manifests kueue sigs.k8s.io/kueue "${KUEUE_VERSION}"
  addon_manifests jobset sigs.k8s.io/jobset "${JOBSET_VERSION}"
  log "all binaries ready under ${CACHE} ($((SECONDS - start))s)"
}

main "$@"
