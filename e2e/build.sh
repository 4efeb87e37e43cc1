#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and helm from
# the Go module proxy and caches them under ~/.cache/kubetune/<name>-<version>/.
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

# Host tools the node agent needs; a fresh CI machine may lack them.
ensure_host_tools() {
  local missing=()
  command -v ip >/dev/null || missing+=(iproute2)
  command -v unshare >/dev/null || missing+=(util-linux)
  command -v flock >/dev/null || missing+=(util-linux)
  command -v openssl >/dev/null || missing+=(openssl)
  if ((${#missing[@]})); then
    log "installing missing packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
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

build_kubernetes() {
  local dir="${CACHE}/kubernetes-${KUBERNETES_VERSION}"
  if complete "${dir}" kube-apiserver kube-controller-manager kubectl; then
    log "kubernetes ${KUBERNETES_VERSION}: cached"; return
  fi
  log "kubernetes ${KUBERNETES_VERSION}: building kube-apiserver, kube-controller-manager, kubectl (slow: ~1M lines of Go)"
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
    printf '\tk8s.io/kubernetes/cmd/%s\n' kube-apiserver kube-controller-manager kubectl
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
         k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
         k8s.io/kubernetes/cmd/kubectl)
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
  log "all binaries ready under ${CACHE} ($((SECONDS - start))s)"
}

main "$@"
