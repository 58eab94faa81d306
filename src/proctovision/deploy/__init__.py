"""Deployment artefacts and their speed: the ONNX export with its parity check and model card, INT8
quantisation kept only at metric parity, and the benchmarks `bench` prints (eager, ONNX Runtime, files to
probabilities, INT8)."""
