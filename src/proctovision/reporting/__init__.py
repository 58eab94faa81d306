"""Figures and reports built from the plain files a run leaves behind."""
