#!/usr/bin/env bash
# Headless Chromium for the report's browser test (tests/browser/), from Debian's own package.
# `make test` calls this; it does nothing when chromium is already installed. Others may be
# running apt at the same time, so wait for the dpkg lock instead of failing on it.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium.sh: chromium is missing; run as root, or: sudo apt-get install chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends chromium
chromium --version
