"""Certificates and keys for one local cluster, made with the openssl CLI.

A real cluster authenticates components with client certificates signed by
its CA and signs ServiceAccount tokens with its own key pair; doing the same
here means RBAC and token review behave exactly as in a real cluster. openssl
is used (rather than a Python crypto package) so the harness needs no extra
dependency.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and its key, as files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPKI:
    """Every file the control plane and its clients need to trust each other."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path
    admin: ClientCert
    controller_manager: ClientCert
    scheduler: ClientCert
    kube_proxy: ClientCert

    def node(self, name: str, address: str) -> tuple[ClientCert, ClientCert]:
        """A kubelet's client certificate (system:node:NAME in system:nodes, as the Node
        authorizer expects) and its serving certificate, which names the node's IP so
        that the API server can verify it for `kubectl logs` and `exec`."""
        client = _sign(self.directory, f"node-{name}", f"/O=system:nodes/CN=system:node:{name}", "clientAuth")
        serving = _sign(
            self.directory,
            f"node-{name}-serving",
            f"/O=system:nodes/CN=system:node:{name}",
            "serverAuth",
            f"DNS:{name},IP:{address}",
        )
        return client, serving

    def serving(self, name: str, ips: list[str]) -> ClientCert:
        """A serving certificate for a process the API server calls at these IPs (a webhook server);
        its clients trust it through the cluster's CA, which the caller hands them as caBundle."""
        return _sign(self.directory, name, f"/CN={name}", "serverAuth", ",".join(f"IP:{ip}" for ip in ips))

    @classmethod
    def create(cls, directory: Path, server_ips: list[str]) -> ClusterPKI:
        """Makes a fresh CA and the certificates signed by it.

        server_ips are the addresses the API server is reached at (loopback
        and the pod bridge's gateway), all named in the serving certificate.
        """
        directory.mkdir(parents=True, exist_ok=True)
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "3",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=kubetune-local-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            cwd=directory,
        )
        sans = [
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
        sans += [f"IP:{ip}" for ip in server_ips]
        _sign(directory, "apiserver", "/CN=kube-apiserver", "serverAuth", ",".join(sans))
        _sign(directory, "admin", "/O=system:masters/CN=kubetune-admin", "clientAuth")
        _sign(directory, "controller-manager", "/CN=system:kube-controller-manager", "clientAuth")
        _sign(directory, "scheduler", "/CN=system:kube-scheduler", "clientAuth")
        _sign(directory, "kube-proxy", "/CN=system:kube-proxy", "clientAuth")
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
        d = directory
        return cls(
            directory=d,
            ca_cert=d / "ca.crt",
            ca_key=d / "ca.key",
            serving_cert=d / "apiserver.crt",
            serving_key=d / "apiserver.key",
            sa_key=d / "sa.key",
            sa_pub=d / "sa.pub",
            admin=ClientCert(d / "admin.crt", d / "admin.key"),
            controller_manager=ClientCert(d / "controller-manager.crt", d / "controller-manager.key"),
            scheduler=ClientCert(d / "scheduler.crt", d / "scheduler.key"),
            kube_proxy=ClientCert(d / "kube-proxy.crt", d / "kube-proxy.key"),
        )


def _sign(directory: Path, name: str, subject: str, usage: str, sans: str = "") -> ClientCert:
    """Creates NAME.key and NAME.crt signed by the CA in directory (P-256 keys: fast to make)."""
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
        cwd=directory,
    )
    ext = directory / f"{name}.ext"
    lines = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        lines.append(f"subjectAltName={sans}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        # A random serial, not a serial file: nodes get their certificates concurrently.
        "-set_serial",
        str(secrets.randbits(63)),
        "-days",
        "3",
        "-out",
        f"{name}.crt",
        "-extfile",
        ext.name,
        cwd=directory,
    )
    return ClientCert(directory / f"{name}.crt", directory / f"{name}.key")
