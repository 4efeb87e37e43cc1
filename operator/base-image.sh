#!/usr/bin/env bash
# The local base image for operator/Dockerfile, made from Debian packages, for machines that
# can reach a Debian mirror but no container registry:
#   localhost/kubetune/python:3.11-bookworm  (Debian bookworm, python3 + venv, ca-certificates)
# Cached: a stamp keyed by this script's content; a warm run only checks the image is there.
# Resumable: downloaded .debs are kept, a half-made root is started over.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=operator/buildah-lib.sh
. "$here/buildah-lib.sh"

SUITE=bookworm
work="$CACHE/base"
mkdir -p "$work/debs"
exec 8>"$work/.lock"
flock 8

key=$(cat "$here/base-image.sh" "$here/buildah-lib.sh" | sha256sum | cut -c1-16)
stamp="$work/stamp-$key"
if [ -s "$stamp" ] && [ "$(image_id "$LOCAL_BASE_IMAGE")" = "$(cat "$stamp")" ]; then
    echo "base image: $LOCAL_BASE_IMAGE is up to date ($(sed "s/^sha256://" "$stamp" | cut -c1-12))"
    exit 0
fi

# The mirror apt already uses (it is the one this machine can reach), unless told otherwise.
mirror() {
    if [ -n "${KUBETUNE_DEBIAN_MIRROR:-}" ]; then echo "$KUBETUNE_DEBIAN_MIRROR"; return; fi
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # deb822 stanzas: the first URI of a stanza whose Suites name the suite itself.
        awk -v suite="$SUITE" '
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { if (uri != "" && hit) { print uri; exit } uri = ""; hit = 0; next }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
            END { if (uri != "" && hit) print uri }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # one-line form: deb [options] URI suite components
        sed -E 's/\[[^]]*\]//' "$f" | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2 }'
    done
    echo http://deb.debian.org/debian
}
# (awk, not head: head would leave mirror() writing to a closed pipe, fatal under pipefail)
MIRROR=$(mirror | awk 'NR == 1')

rootfs="$work/rootfs"
# debootstrap mounts /proc and /sys in the new root; an interrupted run leaves them there.
unmount_under() {
    awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" || true; done
}
if [ ! -f "$rootfs/.kubetune-complete-$key" ]; then
    unmount_under "$rootfs.tmp"
    rm -rf --one-file-system "$rootfs" "$rootfs.tmp"
    echo "base image: debootstrap $SUITE from $MIRROR"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        --cache-dir="$work/debs" "$SUITE" "$rootfs.tmp" "$MIRROR"
    # Trim what an image never reads: package lists and caches, docs, man pages, logs.
    r="$rootfs.tmp"
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
        "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
        "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/tmp/* "$r"/var/tmp/*
    # The build host's resolver and name are not the image's: buildah provides them per run.
    : >"$r/etc/resolv.conf"
    rm -f "$r/etc/hostname"
    touch "$r/.kubetune-complete-$key"
    mv "$r" "$rootfs"
fi

ctr=kubetune-base-work
bh rm "$ctr" >/dev/null 2>&1 || true
bh from --name "$ctr" scratch >/dev/null
mnt=$(bh mount "$ctr")
(cd "$rootfs" && tar --numeric-owner --xattrs --exclude="./.kubetune-complete-$key" -cf - .) |
    tar --numeric-owner --xattrs -xpf - -C "$mnt"
bh umount "$ctr" >/dev/null
bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 \
    --label org.opencontainers.image.description="Debian $SUITE python3 from $MIRROR (kubetune base)" \
    "$ctr"
bh commit --rm --quiet "$ctr" "$LOCAL_BASE_IMAGE" >/dev/null
id=$(image_id "$LOCAL_BASE_IMAGE")
echo "$id" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
find "$work" -maxdepth 1 -name 'stamp-*' ! -name "stamp-$key" -delete
rm -rf "$rootfs"
echo "base image: $LOCAL_BASE_IMAGE $(cut -c8-19 <<<"$id"), driver $STORAGE_DRIVER"
