"""The Kubernetes operator: HyperParameterTuningJobs in, trial Jobs out, status back.

Handlers (handlers.py) are thin; controller.py runs one loop per tuning job,
whose rounds (observe, decide, act) live in reconcile.py, with the state they
share in runstate.py, trial Job creation in creation.py, the records written
back to the trial Jobs in writeback.py and the status in statuswriter.py. The
manifests are built in trialjob.py, and the rebuild-from-the-cluster logic is
in records.py.
"""
