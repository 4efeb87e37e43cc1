"""List-then-watch caches of pods and nodes, as client-go informers keep.

The scheduler and the kubelet side of the agent read these caches instead of
polling the API server; every change also wakes whoever waits on `changed`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .api import Api, ApiError, Obj

log = logging.getLogger(__name__)
Handler = Callable[[str, Obj], None]


class Informer(threading.Thread):
    """Keeps `items` (by uid) in step with one collection of the API."""

    def __init__(
        self, api: Api, path: str, handler: Handler | None = None, stop: threading.Event | None = None, **params: str
    ) -> None:
        super().__init__(name=f"informer {path}", daemon=True)
        self.api = api
        self.path = path
        self.params = params
        self.handler = handler
        self.items: dict[str, Obj] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition()
        self.synced = threading.Event()
        self.stop_event = stop or threading.Event()

    def snapshot(self) -> list[Obj]:
        with self.lock:
            return list(self.items.values())

    def _notify(self, kind: str, obj: Obj) -> None:
        if self.handler is not None:
            try:
                self.handler(kind, obj)
            except Exception:
                log.exception("handler failed for %s event", kind)
        with self.changed:
            self.changed.notify_all()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._list_and_watch()
            except (ApiError, OSError, ValueError) as exc:
                if not self.stop_event.is_set():
                    log.debug("informer %s restarting: %s", self.path, exc)
                    time.sleep(0.5)

    def _list_and_watch(self) -> None:
        listing = self.api.get(self.path, **self.params)
        fresh = {o["metadata"]["uid"]: o for o in listing.get("items", [])}
        with self.lock:
            gone = [o for uid, o in self.items.items() if uid not in fresh]
            self.items = fresh
        for obj in gone:
            self._notify("DELETED", obj)
        for obj in fresh.values():
            self._notify("MODIFIED", obj)
        self.synced.set()
        rv = listing["metadata"]["resourceVersion"]
        while not self.stop_event.is_set():
            for kind, obj in self.api.watch(self.path, rv, timeout_seconds=30, **self.params):
                rv = obj["metadata"].get("resourceVersion", rv)
                if kind == "BOOKMARK":
                    continue
                with self.lock:
                    if kind == "DELETED":
                        self.items.pop(obj["metadata"]["uid"], None)
                    else:
                        self.items[obj["metadata"]["uid"]] = obj
                self._notify(kind, obj)
                if self.stop_event.is_set():
                    return
