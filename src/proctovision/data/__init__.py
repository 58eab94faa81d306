"""Data: from files on disk to manifests, splits and tensors."""
