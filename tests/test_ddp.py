"""The frame model trains with two CPU processes (DDP over gloo) and leaves a usable model."""

from __future__ import annotations

import pytest
import torch
from store_fixtures import write_face_store

from affecttrack.models.registry import load_model_file
from affecttrack.training.frame import FrameTrainConfig, train_frame_model


@pytest.mark.slow
def test_frame_model_trains_with_two_cpu_processes(tmp_path) -> None:
    store = write_face_store(tmp_path / "store", frames=12)
    config = FrameTrainConfig(batch_size=4, max_epochs=1, val_max_frames=8, balance="none",
                              optimizer="adam",
                              lr=1e-3, precision="32-true", accelerator="cpu", devices=2,
                              strategy="ddp_spawn")
    result = train_frame_model(store, tmp_path / "frame", config, progress=False)
    assert result.checkpoint.is_file() and result.epochs == 1
    assert (tmp_path / "frame" / "done.json").is_file()
    checkpoint = torch.load(result.checkpoint, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == result.global_step > 0
    model, _ = load_model_file(result.model_path, "frame")
    assert model(torch.rand(2, 1, 96, 96))["va"].shape == (2, 2)
