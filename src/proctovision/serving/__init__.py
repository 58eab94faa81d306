"""Deployment: predictors (PyTorch or ONNX Runtime alone), ONNX export with a parity check, model cards."""
