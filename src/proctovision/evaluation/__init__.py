"""Evaluation in numbers only (no drawing): metrics with patient-bootstrap confidence intervals, calibration and
operating points, paired tests, MRMC reader studies, reader agreement, subgroups and decision curves, all
computed from predictions and readers files."""
