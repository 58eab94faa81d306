"""The embedded demo: synthetic data through ingest, split, training, evaluation, comparison with simulated
readers, the report and a ready reader study for the reading room, offline on a CPU in minutes. It sits on top
of every other layer but the CLI."""
