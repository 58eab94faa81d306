"""Synthetic data made on the fly, with no patient in it: endoscopy-like stills with burned-in borders, MR-like
DICOM slices, endoscopy video, and simulated readers whose errors fall on the hard images. The demo, the tests
and the benchmarks draw their data from here."""
