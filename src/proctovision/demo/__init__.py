"""The embedded demo: synthetic data through ingest, split, training, evaluation, comparison with simulated
readers, the report and a ready reader study for the reading room, then the loop after go-live on the demo's own
model (monitoring, a shift and its alarm, outcomes, updates under a change-control plan), offline on a CPU in
minutes. It sits on top of every other layer but the CLI."""
