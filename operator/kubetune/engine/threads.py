"""One BLAS thread for the engine's own numerical work, for as long as it runs, and no longer.

The Bayesian strategy works on matrices of at most a few hundred rows. There
BLAS threads buy nothing, and on a busy node they cost a great deal: OpenBLAS
spins its threads waiting for work, and when the cores are taken by other
processes a Cholesky of 200 rows waits for a descheduled thread. On a loaded
2-core machine an ask at fewer than 50 results took 1-2 s with OpenBLAS's
default thread count and 0.1 s with one thread (bench/blas_threads). The
operator image sets OPENBLAS_NUM_THREADS=1, but a notebook or `kubetune run`
would not, and a library must not ask its users to.

`engine_threads()` limits every BLAS library loaded in the process (numpy and
scipy each ship their own OpenBLAS) to one thread while the block runs, and
puts back what was there on the way out: the user's own numpy work, before and
after, keeps the threads they chose. The limit is process-wide while it is held
(BLAS has no per-thread setting), so concurrent asks share one reference-counted
hold: the first to enter sets it, the last to leave restores it, and a thread
that is not asking meanwhile runs with one BLAS thread for those milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import ThreadpoolController

ENGINE_BLAS_THREADS = 1

_lock = threading.Lock()
_depth = 0
_limiter: Any = None
_controller: ThreadpoolController | None = None


def _get_controller() -> ThreadpoolController:
    """Built once: finding the loaded libraries walks the process's shared objects (milliseconds)."""
    global _controller
    if _controller is None:
        import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, so the controller sees it)

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def engine_threads() -> Iterator[None]:
    """Run the block with ENGINE_BLAS_THREADS BLAS threads; restore the previous counts afterwards."""
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            _limiter = _get_controller().limit(limits=ENGINE_BLAS_THREADS, user_api="blas")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None
