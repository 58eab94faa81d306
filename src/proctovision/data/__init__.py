"""Data: from files on disk to manifests, splits and tensors. Ingest with its quality report, the manifest and
its journal, patient-level splits, the torch datasets, transforms and pixel cache, and the synthetic data
generators (endoscopy stills, MR slices, video, simulated readers) that the demo, tests and benchmarks use."""
