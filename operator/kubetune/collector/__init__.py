"""Metrics collection, shared by `kubetune run` and the in-pod sidecar: one code path, one behaviour."""
