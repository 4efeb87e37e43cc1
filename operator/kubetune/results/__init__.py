"""A finished (or running) tuning job's trials, read back for people: tables, exports, reports.

One model (TuningResults) is read from either place a tuning job leaves its
trials — the result JSON of `kubetune run`, or the trial Jobs in a cluster —
so every view (the `kubetune trials` table, the Optuna and CSV exports, the
DataFrame, the HTML report) is written once and works on both.
"""

from kubetune.results.model import TrialRow, TuningResults

__all__ = ["TrialRow", "TuningResults"]
