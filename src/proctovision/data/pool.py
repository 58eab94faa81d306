"""Run one function over many files on all cores, where a crash while reading one file costs only that file.

A decoder that segfaults on a damaged file kills its worker process, and Python's process pool then fails
every task in flight. Those tasks are run again one by one, each in a process of its own: the file that
crashes again gets a crash reason, the others their normal results, and the pool starts afresh.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
# Imported once in the fork server, not once per worker: ingest, pydicom's decoders and the hash's DCT.
PRELOAD = ["proctovision.data.ingest", "proctovision.imaging.dicom", "pydicom.pixels", "pydicom.pixels.decoders.pylibjpeg",
           "pydicom.pixels.decoders.rle", "libjpeg", "openjpeg", "rle", "scipy.fftpack"]


class ItemFailed(Exception):
    """Reading one item failed outside the function's own error handling: the worker died, or it raised."""


class WorkerCrash(ItemFailed):
    """The process reading one item died (a signal or an exit) before it returned."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(describe_exit(exitcode))
        self.exitcode = exitcode


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "the worker died without an exit status"
    if exitcode < 0:
        try:
            return f"the worker was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"the worker was killed by signal {-exitcode}"
    return f"the worker exited with status {exitcode}"


def default_workers() -> int:
    """The cores this process may run on (a container's or a job's share, not the whole machine's)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:
        return max(os.cpu_count() or 1, 1)


def _context() -> multiprocessing.context.BaseContext:
    """A fork server: workers start fast, from a process without the caller's threads (torch, Rich)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def run_each(
    function: Callable[..., Result], items: Iterable[Item], workers: int, *args: Any,
) -> Iterator[tuple[int, Result | ItemFailed]]:
    """``(position, function(item, *args))`` as each item finishes; an item whose worker died or raised yields
    an ItemFailed (a WorkerCrash for a death) in place of its result.

    ``workers`` = 0 runs everything in this process (no crash isolation), for debugging and tests that
    look inside the function.
    """
    numbered = list(enumerate(items))
    if workers <= 0:
        for position, item in numbered:
            yield position, function(item, *args)
        return
    pending = deque(numbered)
    while pending:
        suspects = yield from _pooled(function, pending, workers, args)
        for position, item in suspects:
            yield position, _isolated(function, item, args)


def _pooled(
    function: Callable[..., Result], pending: deque, workers: int, args: tuple,
) -> Iterator[tuple[int, Result]]:
    """Feed ``pending`` through one pool until done or broken; return the items in flight when it broke."""
    window = workers * 4
    in_flight: dict[Future, tuple[int, Item]] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        while pending or in_flight:
            while pending and len(in_flight) < window:
                position, item = pending.popleft()
                in_flight[pool.submit(function, item, *args)] = (position, item)
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    return sorted(in_flight.values(), key=lambda pair: pair[0])
                except Exception as error:  # noqa: BLE001 - the item's failure, not the pool's
                    result = ItemFailed(f"{type(error).__name__}: {error}")
                position, _item = in_flight.pop(future)
                yield position, result
    return []


def _isolated(function: Callable[..., Result], item: Item, args: tuple) -> Result | WorkerCrash:
    """Run one item in a process of its own and tell a crash apart from a result."""
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, item, args), daemon=True)
    process.start()
    sender.close()
    try:
        outcome = receiver.recv()
    except EOFError:
        process.join()
        return WorkerCrash(process.exitcode)
    finally:
        receiver.close()
    process.join()
    if outcome[0] == "error":
        return ItemFailed(outcome[1])
    return outcome[1]


def _child(sender: Any, function: Callable[..., Any], item: Any, args: tuple) -> None:
    try:
        outcome = ("ok", function(item, *args))
    except Exception as error:  # noqa: BLE001 - handed back to the parent as this item's failure
        outcome = ("error", f"{type(error).__name__}: {error}")
    sender.send(outcome)
    sender.close()
