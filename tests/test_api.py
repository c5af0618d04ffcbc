"""The package root exposes each stage, so user code need not know the module layout."""

import pytest

import affecttrack


def test_every_stage_is_importable_from_the_package_root():
    from affecttrack import (
        FaceStore,
        extract_features,
        predict_sequences,
        prepare_affwild2,
        synthesize,
        train_frame_model,
        train_sequence_model,
        va_metrics,
    )
    assert all(callable(item) for item in (FaceStore, extract_features, predict_sequences,
                                           prepare_affwild2, synthesize, train_frame_model,
                                           train_sequence_model, va_metrics))
    assert set(affecttrack.__all__) >= {"run_demo", "SynthConfig", "FrameTrainConfig"}


def test_unknown_names_fail_like_any_module_attribute():
    with pytest.raises(AttributeError, match="no_such_thing"):
        affecttrack.no_such_thing  # noqa: B018
