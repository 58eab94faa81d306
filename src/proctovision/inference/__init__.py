"""Running a trained model over inputs: the one predictor (PyTorch or ONNX Runtime) keyed by path and frame,
the Grad-CAM building blocks, the out-of-distribution detector, and video files and live sources frame by
frame."""
