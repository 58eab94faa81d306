"""The annotated MP4: the content area only (text burned into the border is never copied), with the shown class
and a probability bar under it, and a Grad-CAM overlay every so many frames."""
from __future__ import annotations

import queue
import threading
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from proctovision.imaging.content_area import ContentArea
from proctovision.inference.video.model import FrameModel
from proctovision.inference.video.options import PANEL_HEIGHT, FrameRow, Pixels, VideoError, VideoOptions, VideoResult
from proctovision.inference.video.source import rgb


class Annotator:
    """Writes the annotated MP4 in its own thread: content area only (rest black), class, bar, CAM overlay."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, classes: tuple[str, ...],
                 area: ContentArea | None, width: int, model_crops: bool = False) -> None:
        self.path, self.classes, self.area, self.model_crops = path, classes, area, model_crops
        scale = min(1.0, width / size[0])
        self.out_size = (int(size[0] * scale) // 2 * 2, int(size[1] * scale) // 2 * 2)
        self.font = ImageFont.load_default(size=18)
        self.queue: queue.Queue = queue.Queue(maxsize=64)
        self.fps = fps
        self.cam: np.ndarray | None = None
        self.error: BaseException | None = None
        self.scratch = path.with_name(f".{path.name}.partial.mp4")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, pixels: Pixels, row: FrameRow, cam_png: bytes | None = None) -> None:
        self.queue.put((pixels, row, cam_png))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            self.scratch.unlink(missing_ok=True)
            raise VideoError(f"{self.path}: annotated video not written ({self.error})")
        self.scratch.replace(self.path)

    def abort(self) -> None:
        """Stop writing and remove the partial file: an earlier annotated.mp4 stays as it was."""
        self.error = self.error or RuntimeError("aborted")
        self.queue.put(None)
        self.thread.join()
        self.scratch.unlink(missing_ok=True)

    def _run(self) -> None:
        try:
            with av.open(str(self.scratch), mode="w", format="mp4") as box:
                stream = box.add_stream("libx264", rate=max(1, int(round(self.fps))))
                stream.width, stream.height = self.out_size[0], self.out_size[1] + PANEL_HEIGHT
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "veryfast", "crf": "23"}
                while (item := self.queue.get()) is not None:
                    picture = self.render(*item)
                    box.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
                box.mux(stream.encode())
        except BaseException as error:  # noqa: BLE001 - reported by close(), never lost
            self.error = error
            while self.queue.get() is not None:
                pass

    def render(self, pixels: Pixels, row: FrameRow, cam_png: bytes | None) -> np.ndarray:
        pixels = rgb(pixels)
        shown = self.area.black_outside(pixels) if self.area is not None else pixels
        if cam_png is not None:
            self.cam = self._cam_layer(cam_png, pixels.shape)
        if self.cam is not None:
            mixed = (0.5 * shown + 0.5 * self.cam).astype(np.uint8)
            shown = self.area.black_outside(mixed) if self.area is not None else mixed
        picture = Image.fromarray(shown).resize(self.out_size, Image.BILINEAR)
        canvas = Image.new("RGB", (self.out_size[0], self.out_size[1] + PANEL_HEIGHT), (0, 0, 0))
        canvas.paste(picture, (0, 0))
        self._panel(ImageDraw.Draw(canvas), row)
        return np.asarray(canvas)

    def _cam_layer(self, cam_png: bytes, shape: tuple[int, ...]) -> np.ndarray:
        import io

        overlay = Image.open(io.BytesIO(cam_png)).convert("RGB")
        layer = np.zeros(shape, dtype=np.uint8)
        if self.area is not None and self.model_crops:
            left, top, right, bottom = self.area.box
            layer[top:bottom, left:right] = np.asarray(overlay.resize((right - left, bottom - top)))
        else:
            layer[:] = np.asarray(overlay.resize((shape[1], shape[0])))
        return layer

    def _panel(self, draw: ImageDraw.ImageDraw, row: FrameRow) -> None:
        top = self.out_size[1]
        name = self.classes[row.shown]
        value = float(row.smoothed[row.shown])
        draw.text((10, top + 6), f"{name}  {value:.2f}   t={row.time_s:6.2f}s", fill=(255, 255, 255), font=self.font)
        width = self.out_size[0] - 20
        colour = (220, 60, 60) if row.shown else (60, 200, 90)
        draw.rectangle((10, top + 34, 10 + width, top + 48), outline=(120, 120, 120))
        draw.rectangle((10, top + 34, 10 + int(width * value), top + 48), fill=colour)


def annotator_for(out: Path | None, first: Pixels, result: VideoResult, options: VideoOptions,
               model: FrameModel) -> Annotator | None:
    if out is None or not options.annotate:
        return None
    out.mkdir(parents=True, exist_ok=True)
    first = rgb(first)
    size = (first.shape[1], first.shape[0])
    return Annotator(out / "annotated.mp4", size, result.source_fps or 30.0, result.classes, result.content_area,
                     options.annotate_width, model.spec.crop == "content")
