#!/usr/bin/env bash
# What CI can check of the image without a Docker engine: the Dockerfile is lint-clean, and the
# pinned requirements install into a clean venv the way the Dockerfile installs them (wheels
# only), into a working `kubetune`. The venv is cached per lock file under ~/.cache/kubetune.
set -euo pipefail
cd "$(dirname "$0")/.."
HADOLINT=${HADOLINT:-.venv/bin/hadolint}
PYTHON=${PYTHON:-python3}

"$HADOLINT" operator/Dockerfile
echo "hadolint: operator/Dockerfile is clean"

key=$( (cat operator/requirements.lock; "$PYTHON" --version) | sha256sum | cut -c1-16)
venv="$HOME/.cache/kubetune/image-venv-$key"
if [ ! -f "$venv/.complete" ]; then
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: --requirement operator/requirements.lock
    touch "$venv/.complete"
fi
# The package itself changes with every commit: install it without touching the pinned set.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall . >/dev/null
"$venv/bin/pip" check
"$venv/bin/kubetune" --version
"$venv/bin/python" -c "import kubetune.operator.app, kubetune.collector.sidecar, kubetune.runners.progress, kubetune.engine, kubetune.client, kubetune.results.report"
# The report inlines its vendored chart library: a wheel without the package data would write a broken page.
"$venv/bin/python" -c "from importlib.resources import files; a = files('kubetune.results') / 'assets'; assert all((a / n).is_file() for n in ('echarts.min.js', 'echarts.LICENSE', 'report.js', 'report.css')), 'package data missing'"
(cd manifests/examples && "$venv/bin/python" train_digits.py --epochs 1 >/dev/null)
echo "image requirements: the pinned set installs and runs in a clean venv ($venv)"
