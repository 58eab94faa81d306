"""The two studies' experiment grids as configs, and the resumable runner behind `proctovision reproduce`."""
