"""ProctoVision: deep-learning classifiers for anorectal imaging, from files to clinic."""

__version__ = "0.1.0"
