"""Analyses of pipeline results: disparity of compression configs, hypothesis verdicts."""
