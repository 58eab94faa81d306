"""The live page's answers in the monitoring folder (``serve --monitor DIR``), recorded as ``video --monitor`` records
a video: one answer per second of the stream and one for the whole procedure (a stream from Start to Stop), pooled by
:func:`proctovision.inference.recording.pooled_answer`; never one per frame, and never pixels, ids or file names.

A second is written by a worker thread once the next one begins, so no frame's answer waits on the database. The
procedure is written when the stream ends, after its seconds; when the page stops the stream it receives the
procedure's answer with its prediction id, and asks the clinician once for feedback on it."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from proctovision.inference.recording import FrameNumbers, pooled_answer


class LiveRecording:
    """One stream's frames, pooled per second (recorded as each second ends) and per procedure (on ``end``)."""

    def __init__(self, recorder: object, classes: tuple[str, ...], decide: object) -> None:
        self.recorder, self.classes, self.decide = recorder, tuple(classes), decide
        self.second: int | None = None
        self.this_second: list[FrameNumbers] = []
        self.frames: list[FrameNumbers] = []
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="live-record")
        self.pending: list[Future] = []
        self.ended = False
        self.procedure: dict | None = None

    def add(self, frame: FrameNumbers, second: int) -> None:
        if self.ended:
            return
        if self.second is not None and second != self.second:
            self._write_second()
        self.second = second
        self.this_second.append(frame)
        self.frames.append(frame)

    def _write_second(self) -> None:
        if self.this_second:
            answer = pooled_answer(self.this_second, self.classes, self.decide, None, "second")
            self.this_second = []
            self.pending.append(self.writer.submit(self.recorder.record, [answer]))

    def end(self) -> dict | None:
        """Record the last second and the procedure (once; later calls give the same answer). The procedure's answer
        as the page's feedback panel reads it, or None for a stream without frames."""
        if self.ended:
            return self.procedure
        self.ended = True
        try:
            self._write_second()
            for future in self.pending:
                future.result()
            if self.frames:
                answer = pooled_answer(self.frames, self.classes, self.decide, None, "procedure")
                ident = self.recorder.record([answer])[0]
                self.procedure = {"prediction_id": ident, "predicted": answer.decision, "frames": answer.frames,
                                  "probabilities": {name: round(p, 6) for name, p in answer.probabilities.items()}}
        finally:
            self.writer.shutdown(wait=False)
            self.frames = []
        return self.procedure


def frame_numbers(answer: dict, probabilities: object | None, latency_s: float) -> FrameNumbers:
    """What pooling needs of one live answer: no pixels, no box, no heatmap."""
    quality = answer.get("quality") or {}
    return FrameNumbers(probabilities, answer.get("ood_score"), latency_s, answer.get("in_distribution"),
                        {name: quality[name] for name in ("too_dark", "overexposed", "blurred") if name in quality})
