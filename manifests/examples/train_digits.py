"""A real training script for the examples: a one-hidden-layer MLP on the digits data set, numpy only.

It trains epoch by epoch and reports validation accuracy after each epoch, so
the tuner sees a learning curve. Hyperparameters come from the command line
(which the specs fill with Kubernetes' $(HP_...) expansion) or, when a flag is
absent, from the HP_* environment variables kubetune sets.

Run as one pod of a trial of several (an Indexed Job, multinode.yaml), it is rank
$JOB_COMPLETION_INDEX of $WORLD_SIZE (in a JobSet, jobset/digits.yaml, rank $RANK)
and trains on its shard of the training set (every WORLD_SIZE-th example). The ranks do not talk to each other: the local
cluster has no DNS to find them by name (see the README's "Multi-node trials").

The data (1,797 8x8 images of handwritten digits, from the UCI repository as
packaged by scikit-learn) ships beside this file as digits.npz.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def _env(name: str, default: str) -> str:
    return os.environ.get(f"HP_{name.upper()}", default)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learning-rate", type=float, default=float(_env("learning_rate", "0.1")))
    parser.add_argument("--hidden-units", type=int, default=int(_env("hidden_units", "32")))
    parser.add_argument("--batch-size", type=int, default=int(_env("batch_size", "32")))
    parser.add_argument("--weight-decay", type=float, default=float(_env("weight_decay", "1e-4")))
    parser.add_argument("--momentum", type=float, default=float(_env("momentum", "0.9")))
    parser.add_argument("--activation", choices=["relu", "tanh"], default=_env("activation", "relu"))
    parser.add_argument("--epochs", type=int, default=int(_env("epochs", "10")))
    parser.add_argument("--seed", type=int, default=int(_env("seed", "0")))
    parser.add_argument(
        "--epoch-seconds",
        type=float,
        default=float(_env("epoch_seconds", "0")),
        help=(
            "make each epoch last at least this long, as it would for a bigger model or data set: an epoch here"
            " takes ~50 ms, faster than an operator scrapes, so without it Hyperband and early stopping"
            " would only ever see finished trials"
        ),
    )
    parser.add_argument(
        "--world-size",
        type=int,
        default=int(os.environ.get("WORLD_SIZE", "1")),
        help="the number of ranks (pods) of the trial; this one's rank is $JOB_COMPLETION_INDEX",
    )
    parser.add_argument(
        "--metrics",
        choices=["print", "report"],
        default="print",
        help="print a line per epoch (for metricDefinitions regexes) or call kubetune.report()",
    )
    return parser.parse_args()


def load_digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = np.load(Path(__file__).with_name("digits.npz"))
    x = data["images"].astype(np.float64) / 16.0
    y = data["labels"].astype(np.int64)
    order = np.random.default_rng(1234).permutation(len(y))  # a fixed split, whatever the seed
    x, y = x[order], y[order]
    cut = int(0.7 * len(y))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def main() -> int:
    args = parse_args()
    report = None
    if args.metrics == "report":
        from kubetune import report  # the helper that writes to $KUBETUNE_METRICS_FILE
    x_train, y_train, x_val, y_val = load_digits(args.seed)
    # An Indexed Job tells each pod its completion index; a JobSet's replicated Jobs each start at 0, so there
    # the template says the rank (RANK).
    rank = int(os.environ.get("RANK") or os.environ.get("JOB_COMPLETION_INDEX") or "0")
    if args.world_size > 1:  # this rank's shard of the training set
        x_train, y_train = x_train[rank :: args.world_size], y_train[rank :: args.world_size]
        print(f"rank {rank} of {args.world_size}: training on {len(y_train)} examples", flush=True)
    rng = np.random.default_rng(args.seed)
    n_in, n_hidden, n_out = x_train.shape[1], args.hidden_units, 10
    w1 = rng.normal(0, np.sqrt(2.0 / n_in), (n_in, n_hidden))
    b1 = np.zeros(n_hidden)
    w2 = rng.normal(0, np.sqrt(1.0 / n_hidden), (n_hidden, n_out))
    b2 = np.zeros(n_out)
    params = [w1, b1, w2, b2]
    velocity = [np.zeros_like(p) for p in params]
    act = (lambda z: np.maximum(z, 0.0)) if args.activation == "relu" else np.tanh

    def act_grad(h: np.ndarray) -> np.ndarray:
        return (h > 0).astype(float) if args.activation == "relu" else 1.0 - h**2

    def forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = act(x @ params[0] + params[1])
        logits = h @ params[2] + params[3]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return h, p / p.sum(axis=1, keepdims=True)

    for epoch in range(1, args.epochs + 1):
        epoch_started = time.monotonic()
        order = rng.permutation(len(y_train))
        total_loss = 0.0
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            h, p = forward(xb)
            total_loss -= float(np.log(p[np.arange(len(yb)), yb] + 1e-12).sum())
            grad_logits = p.copy()
            grad_logits[np.arange(len(yb)), yb] -= 1.0
            grad_logits /= len(yb)
            grad_h = grad_logits @ params[2].T * act_grad(h)
            grads = [xb.T @ grad_h, grad_h.sum(0), h.T @ grad_logits, grad_logits.sum(0)]
            for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
                grad = grad + args.weight_decay * param
                velocity[i] = args.momentum * velocity[i] - args.learning_rate * grad
                param += velocity[i]
        _, p_val = forward(x_val)
        accuracy = float((p_val.argmax(axis=1) == y_val).mean())
        train_loss = total_loss / len(y_train)
        if not np.isfinite(train_loss):
            print(f"epoch={epoch} diverged: loss is not finite", file=sys.stderr)
            return 1
        time.sleep(max(0.0, args.epoch_seconds - (time.monotonic() - epoch_started)))
        if report is not None:
            report(step=epoch, val_accuracy=accuracy, train_loss=train_loss)
        print(f"epoch={epoch} train_loss={train_loss:.4f} val_accuracy={accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
