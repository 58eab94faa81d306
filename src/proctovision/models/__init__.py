"""Models: the backbone registry (timm underneath, each entry with its input size, normalisation and Grad-CAM
layer), weights from packages, caches, hubs or files, the study's dense heads and the Lightning module."""
