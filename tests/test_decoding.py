"""The decode gate: heavy uploads decode one at a time beside light ones, never ahead of them."""
from __future__ import annotations

import threading

from proctovision.serving.decoding import DecodeGate


def test_a_light_decode_runs_beside_a_heavy_one_and_a_second_heavy_one_waits():
    gate = DecodeGate(capacity=100, decodes=3)
    release = threading.Event()
    started: list[str] = []

    def decode(name: str) -> str:
        started.append(name)
        if name == "heavy 1":
            release.wait(10)
        return name

    first = gate.submit(90, decode, "heavy 1")
    while not started:
        pass
    second = gate.submit(90, decode, "heavy 2")
    light = gate.submit(5, decode, "light")
    assert light.result(timeout=10) == "light", "the light upload is not held up by the heavy one"
    assert started == ["heavy 1", "light"] and not second.done(), "two heavy decodes never run together"
    release.set()
    assert first.result(timeout=10) == "heavy 1" and second.result(timeout=10) == "heavy 2"
    assert gate.in_use == 0 and gate.running == 0


def test_a_decode_error_reaches_the_request_and_frees_the_gate():
    gate = DecodeGate(capacity=10, decodes=1)

    def broken() -> None:
        raise ValueError("bad file")

    failure = gate.submit(10, broken)
    try:
        failure.result(timeout=10)
    except ValueError as error:
        assert str(error) == "bad file"
    assert gate.submit(10, lambda: "next").result(timeout=10) == "next"
