"""Scoring valence/arousal predictions: metrics, the smoothing baseline, tables and figures."""
