"""A run folder shown as one self-contained HTML page (`affecttrack report`)."""
