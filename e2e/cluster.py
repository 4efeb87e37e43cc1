#!/usr/bin/env python3
"""Entry point: `python e2e/cluster.py up` starts a local cluster (see e2e/README.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from localcluster.cli import main

sys.exit(main())
