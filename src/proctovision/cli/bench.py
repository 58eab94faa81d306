"""Performance: images/s per backbone, ONNX Runtime and INT8 on this CPU."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from proctovision.cli.common import console, fmt, progress_bar

app = typer.Typer()


@app.command()
def bench(
    backbones: Annotated[str, typer.Option(help="comma-separated registry or timm names")] = "resnet18,resnet34",
    batch_size: int = 16,
    image_size: Annotated[Optional[int], typer.Option(help="default: each backbone's input size")] = None,
    onnx: Annotated[bool, typer.Option(help="also time ONNX Runtime")] = True,
    end_to_end: Annotated[bool, typer.Option(help="also time decoding and files on disk to probabilities, "
                                             "on generated full-size 1280x1024 JPEG frames")] = True,
    allocator: Annotated[bool, typer.Option(help="show the allocator tuning's gain on the first backbone")] = True,
    int8: Annotated[bool, typer.Option(help="also FP32 vs INT8 ONNX Runtime images/s, with this CPU's flags")] = False,
    out: Annotated[Optional[Path], typer.Option(help="also write the figures as JSON")] = None,
) -> None:
    """Images/s per backbone in PyTorch eager and ONNX Runtime, against this CPU's matmul GFLOP/s.

    Example: proctovision bench --backbones resnet34,densenet121 --batch-size 16
             proctovision bench --backbones resnet34 --int8 --no-end-to-end --no-allocator
    """
    from proctovision.core import fileio
    from proctovision.deploy.bench import allocator_gain, bench_backbone, matmul_gflops

    limit = matmul_gflops()
    console.print(f"float32 matmul 2048x4096x2048 on this CPU: {limit:.0f} GFLOP/s ({torch_threads()} threads)")
    table = Table(title="inference speed")
    for column in ("backbone", "px", "GFLOP/img", "eager img/s", "eager/matmul", "ONNX img/s", "ONNX/matmul",
                   "ONNX/eager", "decode img/s", "files→probs img/s", "e2e/model"):
        table.add_column(column, justify="right")
    results = []
    names = [name.strip() for name in backbones.split(",") if name.strip()]
    with progress_bar("Benchmarking") as update:
        for done, name in enumerate(names):
            update(done, len(names))
            result = bench_backbone(name, batch_size, limit, onnx, end_to_end, image_size)
            results.append(result.to_dict())
            best_model = max(result.eager_images_per_s, result.onnx_images_per_s or 0)
            table.add_row(
                result.backbone, str(result.input_size), f"{result.gflops_per_image:.2f}",
                f"{result.eager_images_per_s:.1f}", f"{result.eager_fraction:.2f}x",
                fmt(result.onnx_images_per_s, "{:.1f}"), fmt(result.onnx_fraction, "{:.2f}x"),
                fmt(result.onnx_images_per_s and result.onnx_images_per_s / result.eager_images_per_s, "{:.2f}x"),
                fmt(result.decode_images_per_s, "{:.1f}"), fmt(result.end_to_end_images_per_s, "{:.1f}"),
                fmt(result.end_to_end_images_per_s and result.end_to_end_images_per_s / best_model, "{:.2f}"),
            )
        update(len(names), len(names))
    console.print(table)
    if allocator and names:
        plain, tuned = allocator_gain(names[0], batch_size, image_size)
        console.print(f"allocator tuning on {names[0]} eager: {plain:.1f} → {tuned:.1f} img/s ({tuned / plain:.2f}x)")
    quantized = int8_table(names, batch_size, image_size) if int8 else []
    if out:
        fileio.write_json(out, {"matmul_gflops": limit, "results": results, "int8": quantized})


def int8_table(names: list[str], batch_size: int, image_size: int | None) -> list[dict]:
    from proctovision.deploy.bench import cpu_flags, int8_speed

    flags = cpu_flags()
    console.print("CPU flags: " + (", ".join(f"{name} {'yes' if present else 'no'}" for name, present in flags.items())
                                   or "unknown (no /proc/cpuinfo)"))
    table = Table(title=f"ONNX Runtime FP32 vs INT8 (static QDQ, per-channel), batch {batch_size}")
    for column in ("backbone", "px", "FP32 img/s", "INT8 img/s", "INT8/FP32"):
        table.add_column(column, justify="right")
    rows = []
    with console.status("Quantising and timing"):
        for name in names:
            row = int8_speed(name, batch_size, image_size)
            rows.append(row)
            table.add_row(row["backbone"], str(row["input_size"]), f"{row['fp32_images_per_s']:.1f}",
                          f"{row['int8_images_per_s']:.1f}", f"{row['speedup']:.2f}x")
    console.print(table)
    return rows


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
