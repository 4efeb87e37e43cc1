"""A real Kubernetes control plane and a process-based node agent for tests.

Public surface: LocalCluster (start/stop a cluster), ClusterConfig, NodeSpec.
See e2e/README.md for how it works and its limits.
"""

from .cluster import ClusterConfig, LocalCluster
from .nodes import NodeSpec

__all__ = ["ClusterConfig", "LocalCluster", "NodeSpec"]
