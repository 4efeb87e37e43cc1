"""The `kubetune` command: run a tuning job locally, validate a spec, generate the CRD."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune import __version__
from kubetune.errors import ResultsError, SpecError
from kubetune.logs import configure

if TYPE_CHECKING:
    from kubetune.api.spec import HyperParameterTuningJobSpec
    from kubetune.results import TuningResults

# Commands import what they need when they run: the sidecar must be up (and its
# SIGTERM handled) in milliseconds, before the engine's numpy is even loaded.

EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem with the command line or its files, reported in one line."""


RESTRICTED_SIDECAR = (
    '{"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "readOnlyRootFilesystem": true, '
    '"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}'
)
"""The chart's sidecar securityContext: an operator started by hand injects a sidecar that restricted namespaces admit."""


def load_resource(path: Path) -> tuple[str, HyperParameterTuningJobSpec]:
    """The name and validated spec of the HyperParameterTuningJob in a YAML file."""
    import yaml

    from kubetune.api.resource import API_VERSION, KIND
    from kubetune.api.spec import parse_spec

    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CliError(f"{path}: not valid YAML: {exc}") from None
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == KIND:
            if document.get("apiVersion") != API_VERSION:
                raise SpecError("apiVersion", f"must be {API_VERSION}, got {document.get('apiVersion')!r}")
            metadata = document.get("metadata") or {}
            name = metadata.get("name") if isinstance(metadata, dict) else None
            spec = document.get("spec")
            if not isinstance(spec, dict):
                raise SpecError("spec", "is missing or not a mapping")
            return str(name or path.stem), parse_spec(spec)
    raise CliError(f"{path}: no {KIND} document found")


def _cmd_run(args: argparse.Namespace) -> int:
    from kubetune.engine import Tuner
    from kubetune.runners.local import LocalRunner, LocalRunSettings, result_document

    path = Path(args.spec)
    name, spec = load_resource(path)
    if args.max_parallel:
        limits = spec.resource_limits.model_copy(update={"max_parallel_training_jobs": args.max_parallel})
        spec = spec.model_copy(update={"resource_limits": limits})
    output = Path(args.output or f"kubetune-result-{name}.json")
    settings = LocalRunSettings(
        name=name,
        base_dir=path.resolve().parent,
        output_dir=Path(args.trial_dir or Path(".kubetune") / name).resolve(),
    )
    tuner = Tuner(spec)
    if _wants_table(args.progress):
        from kubetune.runners.progress import LiveProgress

        with LiveProgress(force_terminal=True if args.progress == "table" else None) as live:
            runner = LocalRunner(spec, settings, tuner, progress=live)
            asyncio.run(runner.run())
    else:
        runner = LocalRunner(spec, settings, tuner)
        asyncio.run(runner.run())
    document = result_document(runner)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    _print_summary(document, output)
    if document["status"] == "Stopped":
        return EXIT_INTERRUPTED
    return 0 if document["status"] == "Completed" else 1


def _wants_table(progress: str) -> bool:
    """auto: the live table when stdout is a terminal that can redraw; lines (the log lines alone) otherwise."""
    if progress != "auto":
        return progress == "table"
    return sys.stdout.isatty() and os.environ.get("TERM", "") != "dumb"


def _print_summary(document: dict[str, Any], output: Path) -> None:
    objective = document["objective"]
    best = document["best"]
    counts: dict[str, int] = {}
    for trial in document["trials"]:
        counts[trial["status"]] = counts.get(trial["status"], 0) + 1
    print(f"tuning job {document['tuningJob']}: {document['status']} ({document['completionReason']})")
    if document["message"]:
        print(f"  {document['message']}")
    print("  trials: " + ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items())))
    if best is None:
        print("  no trial yielded an objective value")
    else:
        params = ", ".join(f"{k}={v}" for k, v in best["hyperparameters"].items())
        print(f"  best: {best['name'] or best['trial']}  {objective['metricName']}={best['objective']:g}  ({params})")
    print(f"  result: {output}")


def _cmd_validate(args: argparse.Namespace) -> int:
    from kubetune.engine import Tuner

    name, spec = load_resource(Path(args.spec))
    tuner = Tuner(spec)
    budget = tuner.budget
    template = spec.trial_template
    pods = (
        f", {template.pods_per_trial} pods per trial, primary index {template.primary_index}"
        if template.multi_pod
        else ""
    )
    print(
        f"{name}: valid ({spec.strategy.value}, {tuner.space.dims} tuned hyperparameters, budget {budget} trials{pods})"
    )
    return 0


def _cmd_crd(args: argparse.Namespace) -> int:
    from kubetune.api.crd import crd_yaml

    text = crd_yaml()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_operator(args: argparse.Namespace) -> int:
    from kubetune.operator.app import RunOptions, run_operator
    from kubetune.operator.leader import LeaseSettings
    from kubetune.operator.settings import OperatorSettings, ScrapeSettings
    from kubetune.operator.trialjob import SidecarConfig

    try:
        resources = json.loads(args.sidecar_resources)
        security = json.loads(args.sidecar_security_context)
    except ValueError as exc:
        raise CliError(f"--sidecar-resources / --sidecar-security-context must be JSON: {exc}") from None
    settings = OperatorSettings(
        sidecar=SidecarConfig(
            image=args.sidecar_image,
            port=args.sidecar_port,
            image_pull_policy=args.sidecar_image_pull_policy,
            resources=resources,
            security_context=security,
        ),
        scrape=ScrapeSettings(
            interval_seconds=args.scrape_interval,
            timeout_seconds=args.scrape_timeout,
            concurrency=args.scrape_concurrency,
        ),
        namespaces=tuple(args.namespace or ()),
    )
    lease = None
    if args.leader_election:
        try:
            lease = LeaseSettings(
                namespace=args.lease_namespace,
                identity=args.leader_identity,
                duration_seconds=args.lease_duration,
                renew_deadline_seconds=args.lease_renew_deadline,
                retry_seconds=args.lease_retry_period,
            )
        except ValueError as exc:
            raise CliError(f"--lease-duration / --lease-renew-deadline / --lease-retry-period: {exc}") from None
    metrics_port = args.metrics_port if args.metrics_port >= 0 else None
    return run_operator(
        RunOptions(
            settings, lease, args.liveness or None, metrics_port=metrics_port, metrics_address=args.metrics_address
        )
    )


def _results(args: argparse.Namespace) -> TuningResults:
    from kubetune.results.source import open_results

    return open_results(args.source, args.namespace, args.kubeconfig, args.context)


def _cmd_trials(args: argparse.Namespace) -> int:
    from kubetune.results.table import Selection, render

    results = _results(args)
    rows = Selection(args.sort_by, tuple(s for part in args.status for s in part.split(",") if s), args.reverse).apply(
        results
    )
    sys.stdout.write(render(results, rows, args.output))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    if not (args.optuna or args.csv):
        raise CliError("export: say where to, with --optuna STORAGE_URL and/or --csv FILE")
    results = _results(args)
    if args.csv:
        from kubetune.results.table import Selection, to_csv

        Path(args.csv).write_text(to_csv(results, Selection().apply(results)), encoding="utf-8")
        print(f"{len(results.trials)} trials written to {args.csv}")
    if args.optuna:
        from kubetune.results.optuna_export import export_optuna

        study = export_optuna(results, args.optuna, args.study_name)
        print(f"{len(results.trials)} trials written to study {study.study_name!r} in {args.optuna}")
        print(f"  view: optuna-dashboard {args.optuna}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from kubetune.results.report import report_html

    results = _results(args)
    output = Path(args.output or f"kubetune-report-{results.name}.html")
    output.write_text(report_html(results), encoding="utf-8")
    print(f"report of {results.name} ({len(results.trials)} trials): {output}")
    return 0


def _cmd_sidecar(args: argparse.Namespace) -> int:
    import signal
    import threading

    # The kubelet may send SIGTERM as soon as a short trial ends: remember it from
    # the first instant, so it is never the default "die without a word".
    early_stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: early_stop.set())
    from kubetune.collector.sidecar import SidecarSettings, run_sidecar

    try:
        settings = SidecarSettings.from_env()
    except (KeyError, ValueError) as exc:
        raise CliError(f"sidecar: bad or missing environment ({exc}); the operator sets it") from None
    return run_sidecar(settings, early_stop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubetune", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kubetune {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="log line format")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a tuning job on this machine, trials as local processes")
    run.add_argument("spec", help="YAML file with a HyperParameterTuningJob")
    run.add_argument("-o", "--output", help="result JSON (default: kubetune-result-NAME.json)")
    run.add_argument("--trial-dir", help="where trial logs and metrics go (default: .kubetune/NAME)")
    run.add_argument("--max-parallel", type=int, help="override resourceLimits.maxParallelTrainingJobs")
    run.add_argument(
        "--progress",
        choices=["auto", "table", "lines"],
        default="auto",
        help="table: a live table of the running trials, redrawn in place, with the log lines above it;"
        " lines: the log lines alone; auto (default): table when stdout is a terminal",
    )
    run.set_defaults(func=_cmd_run)

    validate = commands.add_parser("validate", help="check a tuning job spec without running it")
    validate.add_argument("spec", help="YAML file with a HyperParameterTuningJob")
    validate.set_defaults(func=_cmd_validate)

    operator = commands.add_parser("operator", help="run the Kubernetes operator (in a pod, or from a kubeconfig)")
    operator.add_argument(
        "--namespace", action="append", help="watch this namespace (repeat for several; default: all)"
    )
    operator.add_argument(
        "--sidecar-image",
        default=os.environ.get("KUBETUNE_SIDECAR_IMAGE", f"ghcr.io/kubetune/kubetune:{__version__}"),
        help="image of the metrics sidecar injected into trial pods (default: $KUBETUNE_SIDECAR_IMAGE or this version's)",
    )
    operator.add_argument("--sidecar-image-pull-policy", choices=["Always", "IfNotPresent", "Never"])
    operator.add_argument("--sidecar-port", type=int, default=9465, help="port the sidecar serves metrics on")
    operator.add_argument("--sidecar-resources", default="{}", help="JSON resources of the sidecar container")
    operator.add_argument(
        "--sidecar-security-context",
        default=RESTRICTED_SIDECAR,
        help="JSON securityContext of the sidecar container (default: what Pod Security 'restricted' requires)",
    )
    operator.add_argument(
        "--scrape-interval", type=float, default=5.0, help="seconds between scrapes of a running trial"
    )
    operator.add_argument("--scrape-timeout", type=float, default=3.0, help="seconds one scrape may take")
    operator.add_argument("--scrape-concurrency", type=int, default=32, help="scrapes in flight at once")
    operator.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold a Lease so one replica acts",
    )
    operator.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the leader-election Lease (default: $POD_NAMESPACE or default)",
    )
    operator.add_argument(
        "--leader-identity",
        default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        help="this replica's name in the Lease (default: $POD_NAME, else host-pid)",
    )
    operator.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        help="seconds a standby waits, having seen the Lease unrenewed, before it takes over (default 15)",
    )
    operator.add_argument(
        "--lease-renew-deadline",
        type=float,
        default=10.0,
        help="seconds the leader keeps acting without a successful renew; must be under --lease-duration (default 10)",
    )
    operator.add_argument(
        "--lease-retry-period",
        type=float,
        default=2.0,
        help="seconds between tries to acquire or renew the Lease; must be under --lease-renew-deadline (default 2)",
    )
    operator.add_argument("--liveness", help="serve kopf's liveness probe here, e.g. http://0.0.0.0:8081/healthz")
    operator.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        help="serve /metrics, /healthz and /readyz on this port (default 8080; 0: any free port; -1: off)",
    )
    operator.add_argument("--metrics-address", default="0.0.0.0", help="address of the metrics endpoint")
    operator.set_defaults(func=_cmd_operator)

    sidecar = commands.add_parser("sidecar", help="the metrics collector inside a trial pod (the operator injects it)")
    sidecar.set_defaults(func=_cmd_sidecar)

    trials = commands.add_parser(
        "trials", help="list every trial of a tuning job (in the cluster, or a kubetune run result file)"
    )
    _source_arguments(trials)
    trials.add_argument(
        "--sort-by",
        default="objective",
        help="objective (default: best first), number, status, duration, steps, or a hyperparameter's name",
    )
    trials.add_argument("--reverse", action="store_true", help="reverse the order")
    trials.add_argument(
        "--status",
        action="append",
        default=[],
        help="only trials in this status (Running, Completed, Stopped, Failed; comma-separated or repeated)",
    )
    trials.add_argument("-o", "--output", choices=["table", "wide", "json", "csv"], default="table")
    trials.set_defaults(func=_cmd_trials)

    export = commands.add_parser("export", help="write a tuning job's trials as an Optuna study and/or a CSV file")
    _source_arguments(export)
    export.add_argument("--optuna", metavar="STORAGE_URL", help="an Optuna storage, e.g. sqlite:///study.db")
    export.add_argument("--study-name", help="name of the new study (default: the tuning job's name)")
    export.add_argument("--csv", metavar="FILE", help="the trial table as CSV, best first, a column per hyperparameter")
    export.set_defaults(func=_cmd_export)

    report = commands.add_parser(
        "report", help="write one self-contained HTML page of a tuning job's trials: charts, importance, table"
    )
    _source_arguments(report)
    report.add_argument("-o", "--output", help="the HTML file (default: kubetune-report-NAME.html)")
    report.set_defaults(func=_cmd_report)

    crd = commands.add_parser("crd", help="print the CustomResourceDefinition generated from the API models")
    crd.add_argument("-o", "--output", help="write to this file instead of stdout")
    crd.set_defaults(func=_cmd_crd)
    return parser


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    """NAME|RESULT.json and kubectl's flags for reaching the cluster."""
    parser.add_argument("source", help="a tuning job's name in the cluster, or a result file of kubetune run (*.json)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's, else default)")


def _print_spec_error(exc: SpecError) -> None:
    """Every problem on a line of its own: a terminal has room, and a list is easier to work through."""
    if len(exc.problems) == 1:
        print(f"kubetune: invalid tuning job: {exc}", file=sys.stderr)
        return
    print(f"kubetune: invalid tuning job, {len(exc.problems)} problems:", file=sys.stderr)
    for field, message in exc.problems:
        print(f"  {field}: {message}" if field else f"  {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.log_level, args.log_format)
    try:
        code: int = args.func(args)
        return code
    except SpecError as exc:
        _print_spec_error(exc)
        return EXIT_INVALID
    except CliError as exc:
        print(f"kubetune: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ResultsError as exc:
        print(f"kubetune: {exc}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
