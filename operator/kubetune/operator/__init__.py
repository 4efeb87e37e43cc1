"""The Kubernetes operator: HyperParameterTuningJobs in, trial Jobs out, status back.

Handlers (handlers.py) are thin; the decisions live in reconcile.py, the
manifests in trialjob.py, and the rebuild-from-the-cluster logic in records.py.
"""
