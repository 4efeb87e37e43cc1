"""The operator's stop flag: kopf must see the lease's `lost`, and never keep the process from exiting."""

from __future__ import annotations

import asyncio
import threading

from kubetune.operator.app import _loop_flag


def test_lost_reaches_the_loop_flag() -> None:
    lost = threading.Event()

    async def main() -> bool:
        flag = _loop_flag(lost)
        asyncio.get_running_loop().call_later(0.05, lost.set)
        await asyncio.wait_for(flag.wait(), timeout=10)
        return flag.is_set()

    assert asyncio.run(main())


def test_a_flag_never_raised_does_not_hold_the_loop_at_exit() -> None:
    """asyncio.run joins the default executor on exit: a thread parked on `lost.wait()` there would hang it."""
    lost = threading.Event()
    done = threading.Event()

    def run() -> None:
        async def main() -> None:
            _loop_flag(lost)
            await asyncio.sleep(0)

        asyncio.run(main())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(timeout=30), "asyncio.run did not return while the lost flag stayed down"
