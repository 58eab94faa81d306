"""Uploads decoded beside each other without one starving the rest, and without holding up a stopping server.

A gate weighted by the pixel values each file declares lets at most a pixel budget's worth be decoded at once (one
81-megapixel PNG beside any number of ordinary frames, never two of the former) and at most one decode per core,
so a light upload waits for a core, never for a heavy one's turn. Decodes run on daemon threads: on SIGTERM the
server stops within its graceful timeout instead of waiting for a decode nobody will read.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future

from proctovision.imaging.budget import pixel_budget


class DecodeGate:
    """``submit(weight, function, *args)`` → a Future; the function runs once ``weight`` fits beside the decodes
    already running (a weight above the capacity waits until it runs alone)."""

    def __init__(self, capacity: int | None = None, decodes: int | None = None) -> None:
        self.capacity = capacity or pixel_budget()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.decodes = decodes or max(2, cores)
        self.in_use = 0
        self.running = 0
        self.condition = threading.Condition()

    def submit(self, weight: int, function: Callable, *args: object) -> Future:
        future: Future = Future()
        weight = min(max(int(weight), 1), self.capacity)

        def work() -> None:
            with self.condition:
                self.condition.wait_for(lambda: self.running < self.decodes
                                        and (self.running == 0 or self.in_use + weight <= self.capacity))
                self.in_use, self.running = self.in_use + weight, self.running + 1
            try:
                future.set_result(function(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the request that waits on it
                future.set_exception(error)
            finally:
                with self.condition:
                    self.in_use, self.running = self.in_use - weight, self.running - 1
                    self.condition.notify_all()

        threading.Thread(target=work, daemon=True, name="proctovision-decode").start()
        return future
