"""INT8 export: quantised with ONNX Runtime, kept only when it decides as FP32 does on validation."""
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import tiny_run_config

from proctovision.inference.predictor import load_predictor
from proctovision.artefacts.runs import RunError, read_run
from proctovision.deploy.export import export_run
from proctovision.deploy.quantize import ParityLimits, parity_figures, quantize_checked, verdict
from proctovision.workflows.training import train


@pytest.mark.parametrize("backbone, mode, weights, size", [
    ("resnet18", "scratch", "none", 32),
    ("efficientnet_lite0", "frozen", "imagenet", 64),  # the registry's name for timm's tf_efficientnet_lite0
])
def test_int8_export_keeps_decisions_and_auc(backbone: str, mode: str, weights: str, size: int, split_file: Path,
                                             tmp_path: Path):
    config = tiny_run_config(split_file, tmp_path / "run", epochs=4, mode=mode, model__backbone=backbone,
                             model__weights=weights, model__head="linear", optim__lr=1e-3, data__image_size=size)
    run = train(config, progress=False).root
    lines: list[str] = []
    check = export_run(run, tmp_path / "int8", quantize="int8", report=lines.append)
    figures = check["quantization"]["validation"]
    assert figures["decision_agreement"] >= 0.99 and figures["auc_drop"] <= 0.01
    assert "decisions agree" in lines[0]
    model = onnx.load(tmp_path / "int8" / "model.onnx")
    operators = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    per_channel = [init for init in model.graph.initializer if init.name.endswith("_scale") and init.dims]
    assert per_channel, "weights should carry one scale per output channel"
    predictor = load_predictor(tmp_path / "int8")
    assert predictor.card["quantization"]["validation"] == figures
    assert "agree with FP32" in (tmp_path / "int8" / "MODEL_CARD.md").read_text()
    reference = load_predictor(run)
    images = sorted(Path(split_file).parent.rglob("*.png"))[:6]
    assert [p.predicted for p in predictor.predict_files(images).predictions] == [
        p.predicted for p in reference.predict_files(images).predictions]


def test_parity_figures_and_refusal_reasons():
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1, 0, 1])
    fp32 = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.45, 0.55], [0.7, 0.3],
                     [0.1, 0.9], [0.65, 0.35], [0.4, 0.6]])
    int8 = fp32.copy()
    int8[5] = [0.68, 0.32]  # one decision flips, and that positive now ranks below two negatives (0.4, 0.35)
    figures = parity_figures(fp32, int8, labels, threshold=0.5)
    assert figures["decision_agreement"] == pytest.approx(0.9)
    assert figures["auc_fp32"] == pytest.approx(1.0)
    assert figures["auc_int8"] == pytest.approx(23 / 25)  # 2 of the 25 positive-negative pairs now misordered
    reasons = verdict(figures, ParityLimits())
    assert len(reasons) == 2 and "90.0%" in reasons[0] and "0.0800" in reasons[1]
    assert verdict(parity_figures(fp32, fp32, labels, 0.5), ParityLimits()) == []


def test_a_refused_int8_model_writes_nothing(split_file: Path, tmp_path: Path):
    run = train(tiny_run_config(split_file, tmp_path / "run", epochs=1), progress=False).root
    (tmp_path / "scratch").mkdir()
    from proctovision.deploy.export import ProbabilitiesAndFeatures, to_onnx
    from proctovision.models.module import load_module

    info = read_run(run)
    fp32 = tmp_path / "scratch" / "fp32.onnx"
    to_onnx(ProbabilitiesAndFeatures(load_module(info)).eval(), 32, fp32, ("probabilities", "features"))
    with pytest.raises(RunError, match="refused"):
        quantize_checked(info, fp32, tmp_path / "scratch", limits=ParityLimits(min_agreement=1.01))
    with pytest.raises(RunError, match="unknown quantisation"):
        export_run(run, tmp_path / "out", quantize="int4")
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_weights_keep_to_seven_bits_only_where_the_cpu_lacks_vnni(tmp_path: Path):
    from proctovision.core.perf import cpu_flags, has_vnni

    assert has_vnni({"avx2": True, "avx512_vnni": True}) and has_vnni({"avx2": True, "avx_vnni": True})
    assert not has_vnni({"avx2": True, "avx512f": True, "avx512_vnni": False})
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx2 avx512f\n")
    assert cpu_flags(cpuinfo) == {"avx2": True, "avx512f": True, "avx512_vnni": False, "avx_vnni": False,
                                  "amx_int8": False}
