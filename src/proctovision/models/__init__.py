"""Models: the backbone registry, weights, heads and the Lightning module."""
