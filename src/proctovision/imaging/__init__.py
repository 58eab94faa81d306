"""Pixels without torch: reading pictures and DICOM (windows, frames, pseudonyms), the content area of an
endoscopic frame, image quality flags, and the preprocessing spec (size, resize rule, mean/std, window, crop)
that travels with the weights and builds both the training transform and the torch-free inference path."""
