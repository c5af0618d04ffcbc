"""A second backbone family is one new module plus registry entries.

This file is that module: a toy frame network and a toy sequence network that meet the contracts
of `affecttrack.models.base`, registered under new names. Nothing else in the package changes, and
the whole flow runs on them: training, feature extraction, sequence training, store-level
prediction, a bundle, prediction on faces and streaming.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from store_fixtures import write_face_store
from torch import nn

from affecttrack.errors import AffectTrackError
from affecttrack.features.extract import extract_features
from affecttrack.inference.bundle import Preprocessing, make_bundle
from affecttrack.inference.predictor import AffectModel
from affecttrack.inference.streaming import SequenceStream
from affecttrack.models import registry
from affecttrack.models.base import FrameNetwork, SequenceNetwork, State
from affecttrack.models.registry import ModelSpec, register_model
from affecttrack.predictions.sequence import predict_sequences
from affecttrack.training.frame import FrameTrainConfig, train_frame_model
from affecttrack.training.sequence import SequenceTrainConfig, train_sequence_model


class TinyFrameNet(FrameNetwork):
    """One convolution, pooled to 4 x 4, then a 16-d feature."""

    def __init__(self, heads: dict[str, int], width: int = 16) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64, width))
        self.heads = nn.ModuleDict({name: nn.Linear(width, size) for name, size in heads.items()})

    @property
    def num_features(self) -> int:
        return self.trunk[-1].out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


class MeanSequenceNet(SequenceNetwork):
    """A running mean of the features, then a linear head: its state is (sum, count)."""

    def __init__(self, heads: dict[str, int] | None = None, input_dim: int = 16,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        self.head_sizes = dict(heads or {"va": 2})
        self.width = input_dim
        self.head = nn.Linear(input_dim, sum(self.head_sizes.values()))

    @property
    def input_size(self) -> int:
        return self.width

    def step(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        total, count = state if state is not None else (x.new_zeros(x.shape[0], x.shape[2]),
                                                        x.new_zeros(x.shape[0], 1))
        sums = total[:, None] + x.cumsum(dim=1)
        counts = count[:, None] + torch.arange(1, x.shape[1] + 1, dtype=x.dtype)[None, :, None]
        return self.head(sums / counts), [sums[:, -1], counts[:, -1]]

    def state_names(self) -> list[tuple[str, int]]:
        return [("sum", self.width), ("count", 1)]

    def flat_state(self, state: State) -> list[torch.Tensor]:
        return list(state)

    def nested_state(self, flat: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> State:
        return list(flat)


@pytest.fixture(scope="module")
def toy_names():
    """The toy entries, registered for this module's tests and removed after them."""
    register_model("frame", "toy_va", ModelSpec(TinyFrameNet, "toy CNN", {"heads": {"va": 2}}))
    register_model("sequence", "toy_mean", ModelSpec(MeanSequenceNet, "running mean"))
    yield "toy_va", "toy_mean"
    del registry.FRAME_MODELS["toy_va"], registry.SEQUENCE_MODELS["toy_mean"]


def test_registry_refuses_a_class_outside_the_contract(toy_names) -> None:
    with pytest.raises(AffectTrackError, match="not a FrameNetwork subclass"):
        register_model("frame", "plain", ModelSpec(nn.Linear, "not a frame network"))
    with pytest.raises(AffectTrackError, match="already registered"):
        register_model("frame", "toy_va", ModelSpec(TinyFrameNet, "again"))


def test_a_new_backbone_runs_the_whole_flow(toy_names, tmp_path) -> None:
    frame_name, sequence_name = toy_names
    store = write_face_store(tmp_path / "store")
    frame = train_frame_model(store, tmp_path / "frame", FrameTrainConfig(
        model=frame_name, batch_size=8, max_steps=2, val_max_frames=8, optimizer="adam",
        lr=1e-3, precision="32-true"), progress=False)
    features = extract_features(store, frame.model_path, tmp_path / "features",
                                precision="32-true", progress=False)
    assert features.features.shape == (store.faces.shape[0], 16)
    sequence = train_sequence_model(store, features, tmp_path / "sequence", SequenceTrainConfig(
        model=sequence_name, window=5, stride=5, batch_size=4, max_steps=2, precision="32-true"),
        progress=False)
    table = predict_sequences(store, features, sequence.model_path, split="val")
    assert len(table) and np.isfinite(table[["valence", "arousal"]].to_numpy()).all()

    bundle = make_bundle(frame.model_path, sequence.model_path, out=tmp_path / "toy.pt",
                         preprocessing=Preprocessing(detector=None))
    assert isinstance(bundle.frame, TinyFrameNet) and isinstance(bundle.sequence, MeanSequenceNet)
    faces = store.faces[:6]
    predicted = AffectModel(bundle).predict_faces(faces)
    assert predicted[["valence", "arousal"]].shape == (6, 2)

    z = bundle.frame.forward_features(bundle.preprocessing.to_input(faces)).detach().numpy()
    stream = SequenceStream.from_bundle(bundle)
    chunked = np.concatenate([stream.push(z[:2]), stream.push(z[2:])])
    with torch.inference_mode():
        whole = bundle.sequence(torch.from_numpy(z)[None])[0].numpy()
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
