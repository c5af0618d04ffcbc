"""Per-frame predictions of stored faces: the prediction-table contract, the sequence model's
predictions over a feature store, and moving-average smoothing (which evaluation and video
inference both use)."""
