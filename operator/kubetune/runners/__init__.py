"""How trials run: local subprocesses here; Kubernetes Jobs in the operator."""
