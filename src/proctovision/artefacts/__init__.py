"""Run artefacts: the run folder (its paths, resolved config, task and preprocessing spec, the rows of each split,
the done-marker) and the model card that travels with a model (classes, preprocessing, operating threshold,
temperature, metrics). Everything above reads a run through here; nothing here loads a model or draws."""
