"""NAME or RESULT.json: the one argument every results command takes."""

from __future__ import annotations

from pathlib import Path

from kubetune.errors import ResultsError
from kubetune.results.model import TuningResults
from kubetune.results.resultfile import load_result_file


def is_result_file(source: str) -> bool:
    """A path to a result file rather than a tuning job's name (names cannot hold '/' or end in .json)."""
    return source.endswith(".json") or "/" in source or Path(source).is_file()


def open_results(
    source: str, namespace: str | None = None, kubeconfig: str | None = None, context: str | None = None
) -> TuningResults:
    """The trials of a local result file, or of the tuning job of that name in the cluster."""
    if is_result_file(source):
        return load_result_file(Path(source))
    if not source:
        raise ResultsError("give a tuning job's name or a result file (kubetune-result-NAME.json)")
    from kubetune.results.cluster import load_tuning_job
    from kubetune.results.connection import connect

    connection = connect(kubeconfig, context, namespace)
    return load_tuning_job(connection.api, connection.namespace, source)
