"""Scoring beat classifiers against reference annotations: per-class metrics and `ml evaluate`."""
