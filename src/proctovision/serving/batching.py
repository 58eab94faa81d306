"""Micro-batching for the service: concurrent requests wait a few milliseconds to share one forward pass.

One thread owns inference. It takes the first waiting request, then gathers more until the batch holds
``max_images`` images or ``max_wait_s`` has passed since the first arrived, runs them as one batch, and hands
each request its rows. With ``max_images=1`` it answers one request at a time, the unbatched baseline.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

Outputs = tuple[np.ndarray, "np.ndarray | None"]


class Batcher:
    def __init__(self, run_batch: Callable[[np.ndarray], Outputs], lock: threading.Lock, max_images: int = 16,
                 max_wait_s: float = 0.01) -> None:
        if max_images < 1 or max_wait_s < 0:
            raise ValueError("batching needs max_images >= 1 and max_wait_s >= 0")
        self.run_batch, self.lock = run_batch, lock
        self.max_images, self.max_wait_s = max_images, max_wait_s
        self.waiting: queue.Queue[tuple[np.ndarray, Future]] = queue.Queue()
        self.batch_sizes: list[int] = []
        threading.Thread(target=self._serve, daemon=True, name="proctovision-batcher").start()

    def submit(self, arrays: np.ndarray) -> Future:
        """Queue one request's images ``[k, 3, H, W]``; the future gives (probabilities, features) rows for them."""
        future: Future = Future()
        self.waiting.put((arrays, future))
        return future

    def _gather(self) -> list[tuple[np.ndarray, Future]]:
        items = [self.waiting.get()]
        count = len(items[0][0])
        deadline = time.perf_counter() + self.max_wait_s
        while count < self.max_images:
            remaining = deadline - time.perf_counter()
            try:
                item = self.waiting.get(timeout=remaining) if remaining > 0 else self.waiting.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            count += len(item[0])
        return items

    def _serve(self) -> None:
        while True:
            items = self._gather()
            sizes = [len(arrays) for arrays, _ in items]
            try:
                with self.lock:
                    probabilities, features = self.run_batch(np.concatenate([arrays for arrays, _ in items]))
            except Exception as error:  # noqa: BLE001 - every waiting request learns of the failure
                for _, future in items:
                    future.set_exception(error)
                continue
            self.batch_sizes.append(sum(sizes))
            start = 0
            for (_, future), size in zip(items, sizes):
                rows = slice(start, start + size)
                future.set_result((probabilities[rows], None if features is None else features[rows]))
                start += size
