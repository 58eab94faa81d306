"""The generated endoscopy-like video: its truth file says where the lesion is, and the frames agree."""
from __future__ import annotations

import json

import av
import numpy as np

from proctovision.data.synthetic.video import lesion_centre_x, write_demo_video


def purple_fraction(pixels: np.ndarray) -> float:
    red, green, blue = (pixels[..., channel].astype(float) for channel in range(3))
    return float(((blue > 0.72 * red) & (red > 70) & (green < 0.7 * red)).mean())


def test_the_lesion_is_in_view_exactly_when_the_truth_file_says(tmp_path):
    video = write_demo_video(tmp_path / "v.mp4", size=(192, 160), fps=10, seconds=5.0, segments=[(1.5, 3.5)])
    truth = json.loads((tmp_path / "v.truth.json").read_text())
    assert truth["lesion_segments"] == [[1.5, 3.5]] and truth["n_frames"] == 50
    with av.open(video.path) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (192, 160) and float(stream.average_rate) == 10
        fractions = [purple_fraction(frame.to_ndarray(format="rgb24")) for frame in container.decode(stream)]
    assert len(fractions) == 50
    inside = fractions[20:31]
    outside = fractions[:8] + fractions[43:]
    assert min(inside) > 2 * max(outside)


def test_text_is_burned_into_the_border_in_every_frame(tmp_path):
    video = write_demo_video(tmp_path / "v.mp4", size=(256, 208), fps=5, seconds=1.0, segments=[])
    with av.open(video.path) as container:
        for frame in container.decode(video=0):
            pixels = frame.to_ndarray(format="rgb24")
            for left, top, right, bottom in video.text_boxes:
                assert pixels[top:bottom, left:right].max() > 200


def test_the_lesion_crosses_the_field_edge_at_the_segment_bounds():
    centre, radius = 100.0, 50.0
    assert lesion_centre_x(2.0, (2.0, 5.0), centre, radius, 0.5) == centre + radius
    assert abs(lesion_centre_x(5.0, (2.0, 5.0), centre, radius, 0.5) - (centre - radius)) < 1e-9
    assert lesion_centre_x(3.5, (2.0, 5.0), centre, radius, 0.5) == centre
