"""Running a trained model over inputs: the one predictor (PyTorch or ONNX Runtime)."""
