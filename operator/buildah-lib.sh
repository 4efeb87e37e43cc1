# shellcheck shell=bash
# Sourced by base-image.sh and build-image.sh: one buildah store under the kubetune cache,
# and the storage driver it was created with (a store cannot change driver once made).
CACHE=${KUBETUNE_CACHE:-$HOME/.cache/kubetune}
BUILDAH_DIR="$CACHE/buildah"
# shellcheck disable=SC2034 # used by the scripts that source this
LOCAL_BASE_IMAGE=localhost/kubetune/python:3.11-bookworm
mkdir -p "$BUILDAH_DIR"

# A fresh machine has neither: Debian's packages (the same e2e/build.sh installs for the cluster).
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    echo "installing buildah and debootstrap (Debian's packages)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        buildah debootstrap >/dev/null
fi

# overlay where the kernel and the cache's filesystem allow it (fast, shares layers), else vfs.
probe_overlay() {
    local p
    p=$(mktemp -d "$BUILDAH_DIR/probe.XXXXXX")
    mkdir "$p/l" "$p/u" "$p/w" "$p/m"
    if mount -t overlay overlay -o "lowerdir=$p/l,upperdir=$p/u,workdir=$p/w" "$p/m" 2>/dev/null; then
        umount "$p/m"
        rm -rf "$p"
        return 0
    fi
    rm -rf "$p"
    return 1
}

if [ -n "${KUBETUNE_STORAGE_DRIVER:-}" ]; then
    STORAGE_DRIVER=$KUBETUNE_STORAGE_DRIVER
elif [ -s "$BUILDAH_DIR/driver" ]; then
    STORAGE_DRIVER=$(cat "$BUILDAH_DIR/driver")
else
    if [ "$(id -u)" = 0 ] && probe_overlay; then STORAGE_DRIVER=overlay; else STORAGE_DRIVER=vfs; fi
    echo "$STORAGE_DRIVER" >"$BUILDAH_DIR/driver"
fi

bh() {
    buildah --root "$BUILDAH_DIR/root" --runroot "$BUILDAH_DIR/run" --storage-driver "$STORAGE_DRIVER" "$@"
}

image_id() { # the full id of a local image, or nothing
    bh images --noheading --no-trunc --format '{{.ID}}' "$1" 2>/dev/null | awk 'NR == 1'
}
