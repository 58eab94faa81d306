"""All drawing: every figure (matplotlib) and the self-contained HTML report, built from the plain files that
runs, scores and comparisons leave behind, in English or Chinese."""
