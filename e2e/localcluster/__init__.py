"""A real Kubernetes cluster on this machine for tests: control plane and nodes, without Docker.

Public surface: LocalCluster (start/stop a cluster), ClusterConfig, NodeSpec.
See e2e/README.md for how it works and its limits.
"""

from .cluster import ClusterConfig, LocalCluster
from .node import NodeSpec

__all__ = ["ClusterConfig", "LocalCluster", "NodeSpec"]
