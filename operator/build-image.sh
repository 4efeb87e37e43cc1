#!/usr/bin/env bash
# `make image`: build operator/Dockerfile without Docker, with buildah, into
#   $KUBETUNE_CACHE/images/kubetune-dev.tar  (docker-archive of localhost/kubetune:dev)
# The base defaults to the one operator/base-image.sh makes from Debian packages (no registry
# needed); BASE_IMAGE=python:3.11.14-slim-bookworm builds on the official one instead.
# pip in the build reaches the index the way this machine's pip does: its pip.conf, its CA
# bundle and its PIP_* settings are mounted read-only into the RUN steps, never into the image.
# Skipped entirely when the inputs' content hash matches the stamp next to the archive.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=operator/buildah-lib.sh
. operator/buildah-lib.sh

TAG=localhost/kubetune:dev
out="$CACHE/images"
tar="$out/kubetune-dev.tar"
mkdir -p "$out" "$CACHE/build"
exec 9>"$out/.lock"
flock 9
start=$(date +%s.%N)

BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE_IMAGE}
if [ "$BASE_IMAGE" = "$LOCAL_BASE_IMAGE" ]; then
    bash operator/base-image.sh
    pull=never
else
    pull=false # pull only when not already in the store
fi
base_id=$(image_id "$BASE_IMAGE" || true)

inputs() {
    printf '%s\n' operator/Dockerfile operator/requirements.lock pyproject.toml README.md \
        .dockerignore operator/build-image.sh \
        manifests/examples/train_digits.py manifests/examples/digits.npz
    find operator/kubetune -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort
}
key=$( (inputs | xargs sha256sum; echo "base $BASE_IMAGE $base_id") | sha256sum | cut -c1-32)
stamp="$tar.stamp"
if [ -f "$tar" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && [ -n "$(image_id "$TAG")" ]; then
    echo "image: $TAG is up to date ($tar, $(du -h "$tar" | cut -f1))"
    exit 0
fi

# This machine's pip settings, merged into one pip.conf (a file with two [global] sections
# would not parse), plus whatever files they point at, all read-only.
mounts=()
pipconf="$CACHE/build/pip.conf"
python3 - "$pipconf" <<'PY'
import configparser, os, sys
c = configparser.RawConfigParser()
c.read(os.environ.get("PIP_CONFIG_FILE") or "/etc/pip.conf")
if not c.has_section("global"):
    c.add_section("global")
for env, key in (("PIP_INDEX_URL", "index-url"), ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
                 ("PIP_TRUSTED_HOST", "trusted-host"), ("PIP_DEFAULT_TIMEOUT", "timeout")):
    if os.environ.get(env):
        c.set("global", key, os.environ[env])
cert = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
if cert and os.path.isfile(cert):
    c.set("global", "cert", cert)
links = os.environ.get("PIP_FIND_LINKS", "")
if links:
    # Only local wheel folders that exist (and hold something) are worth mounting.
    if os.path.isdir(links) and os.listdir(links):
        c.set("global", "find-links", links)
elif c.has_option("global", "find-links") and not os.path.isdir(c.get("global", "find-links")):
    c.remove_option("global", "find-links")
with open(sys.argv[1], "w") as f:
    c.write(f)
PY
mounts+=(-v "$pipconf:/etc/pip.conf:ro")
cert=$(python3 -c 'import configparser,sys; c=configparser.RawConfigParser(); c.read(sys.argv[1]); print(c.get("global","cert",fallback=""))' "$pipconf")
for f in "$cert" /etc/ssl/certs/ca-certificates.crt; do
    [ -n "$f" ] && [ -f "$f" ] && mounts+=(-v "$f:$f:ro")
done
links=$(python3 -c 'import configparser,sys; c=configparser.RawConfigParser(); c.read(sys.argv[1]); print(c.get("global","find-links",fallback=""))' "$pipconf")
[ -n "$links" ] && [ -d "$links" ] && mounts+=(-v "$links:$links:ro")
# The mounted pip.conf says it all: keep the build environment's own PIP_* out of the way.
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CERT

bh build --isolation chroot --network host --layers --pull="$pull" \
    -f operator/Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE" "${mounts[@]}" -t "$TAG" .

# Smoke test before anything is written: the CLI, the sidecar's imports, and the examples'
# training script as the image's own non-root user.
ctr=$(bh from --pull=never "$TAG")
trap 'bh rm "$ctr" >/dev/null 2>&1 || true' EXIT
bh run --isolation chroot "$ctr" -- kubetune --version
bh run --isolation chroot "$ctr" -- python -c "import kubetune.operator.app, kubetune.collector.sidecar"
# The sidecar wraps a trial's command with these (README, "The sidecar").
bh run --isolation chroot "$ctr" -- sh -c 'command -v mkfifo tee >/dev/null'
bh run --isolation chroot --user 65532:65532 "$ctr" -- sh -c 'cd /app && python train_digits.py --epochs 1 >/dev/null'
bh rm "$ctr" >/dev/null
trap - EXIT

rm -f "$tar.tmp"
bh push --quiet "$TAG" "docker-archive:$tar.tmp:$TAG"
mv "$tar.tmp" "$tar"
echo "$key" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"

secs=$(python3 -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 1))" "$(date +%s.%N)" "$start")
size=$(bh images --noheading --format '{{.Size}}' "$TAG" | awk 'NR == 1')
echo "image: $TAG $(image_id "$TAG" | cut -c8-19), $size (archive $(du -h "$tar" | cut -f1)) in ${secs}s, driver $STORAGE_DRIVER"
echo "image: $tar"
