"""Metrics collection, shared by `kubetune run` and the in-pod sidecar: one code path, one behaviour.

The sidecar (sidecar.py) lives here, not in runners/: it runs no trials, it only
collects and serves what one trial reports.
"""
