"""affecttrack: per-frame valence, arousal and expression from face videos."""

__version__ = "0.1.0"
