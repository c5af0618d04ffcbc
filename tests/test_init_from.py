"""`frame.init_from`: a frame network starts from another's weights (a model file or a bundle).

The trunk is copied exactly, a head of the same name and size too; a head the source lacks, or
of another size or other named classes, keeps its fresh initialisation and the report says why.
Another architecture, a damaged file or a sequence model is one line naming the file.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from cli_runner import run_cli
from store_fixtures import write_face_store
from torch import nn

from affecttrack.errors import AffectTrackError
from affecttrack.inference.bundle import Preprocessing, make_bundle
from affecttrack.labels import AFFWILD2_EXPRESSIONS
from affecttrack.models import registry
from affecttrack.models.base import FrameNetwork
from affecttrack.models.registry import (
    ModelSpec,
    create_frame_model,
    create_model,
    register_model,
    save_model_file,
)
from affecttrack.models.transfer import initialise_from, read_weight_source
from affecttrack.runinfo import file_sha256


class ToyFrameNet(FrameNetwork):
    """Another family: one convolution and a 16-d feature."""

    def __init__(self, heads: dict[str, int]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.AdaptiveAvgPool2d(4),
                                   nn.Flatten(), nn.Linear(64, 16))
        self.heads = nn.ModuleDict({name: nn.Linear(16, size) for name, size in heads.items()})

    @property
    def num_features(self) -> int:
        return 16

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


class Code:
    """Unpickling this would create a file."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def saved(path, name, seed=0, **overrides):
    """A freshly initialised frame model of `name` (drawn with `seed`) written as a model file."""
    torch.manual_seed(seed)
    model = create_frame_model(name, **overrides)
    save_model_file(path, model, kind="frame", name=name, overrides=overrides)
    return path, model


def fresh(name, seed=1):
    torch.manual_seed(seed)
    network = create_frame_model(name)
    return network, {key: value.clone() for key, value in network.state_dict().items()}


def assert_started_from(network, source, before, copied_heads) -> None:
    """Trunk and `copied_heads` equal the source's; every other head its own fresh weights."""
    theirs = source.state_dict()
    for key, value in network.state_dict().items():
        head = key.split(".")[1] if key.startswith("heads.") else None
        expected = theirs[key] if head is None or head in copied_heads else before[key]
        torch.testing.assert_close(value, expected, rtol=0, atol=0, msg=key)


def test_a_va_model_starts_the_trunk_and_va_head_of_a_two_head_model(tmp_path) -> None:
    path, source = saved(tmp_path / "frame_model.pt", "cnn_va")
    network, before = fresh("cnn_va_expr7")
    report = initialise_from(network, read_weight_source(path), name="cnn_va_expr7")
    assert_started_from(network, source, before, {"va"})
    assert report.heads_copied == ("va",)
    assert report.heads_reinitialised == {"expression": "the source has no such head"}
    trunk = [key for key in network.state_dict() if not key.startswith("heads.")]
    assert report.tensors_copied == len(trunk) + 2
    record = report.record()
    assert record["sha256"] == file_sha256(path) and record["path"] == str(path)
    assert record["heads_reinitialised"] == {"expression": "the source has no such head"}
    assert "heads re-initialised: expression (the source has no such head)" in report.describe()


def test_other_expression_classes_re_initialise_the_expression_head(tmp_path) -> None:
    path, source = saved(tmp_path / "frame_model.pt", "cnn_va_expr8")
    network, before = fresh("cnn_va_expr7")
    report = initialise_from(network, read_weight_source(path), name="cnn_va_expr7")
    assert_started_from(network, source, before, {"va"})
    assert report.heads_reinitialised == {"expression": "8 outputs in the source, 7 here"}


def test_reading_the_source_leaves_the_seeded_random_draws_alone(tmp_path) -> None:
    path, _ = saved(tmp_path / "frame_model.pt", "cnn_va")
    torch.manual_seed(5)
    read_weight_source(path)
    after_reading = torch.rand(3)
    torch.manual_seed(5)
    torch.testing.assert_close(after_reading, torch.rand(3))


def test_a_bundle_starts_a_network_as_its_model_file_does(tmp_path) -> None:
    path, source = saved(tmp_path / "frame_model.pt", "cnn_va")
    bundle = tmp_path / "va.bundle.pt"
    make_bundle(path, out=bundle, preprocessing=Preprocessing(detector=None))
    network, before = fresh("cnn_va_expr7")
    report = initialise_from(network, read_weight_source(bundle), name="cnn_va_expr7")
    assert_started_from(network, source, before, {"va"})
    assert report.heads_reinitialised == {"expression": "the source has no such head"}
    assert report.record()["sha256"] == file_sha256(bundle)


def test_default_names_the_expression_model_shipped_in_the_package() -> None:
    """The documented start for small datasets, wherever the package is installed."""
    source = read_weight_source("default")
    assert source.path == registry.DEFAULT_BUNDLE and source.name == "cnn_expr8"
    assert source.classes["expression"][0] == "Neutral" and len(source.classes["expression"]) == 8
    network, _ = fresh("cnn_expr8")
    report = initialise_from(network, source, name="cnn_expr8")
    assert report.heads_copied == ("expression",)


def test_a_bundle_names_its_classes_so_other_classes_are_caught(tmp_path) -> None:
    path, source = saved(tmp_path / "frame_model.pt", "cnn_va_expr7")
    reordered = tuple(reversed(AFFWILD2_EXPRESSIONS))
    other = tmp_path / "other.bundle.pt"
    make_bundle(path, out=other, labels=reordered, preprocessing=Preprocessing(detector=None))
    network, before = fresh("cnn_va_expr7")
    report = initialise_from(network, read_weight_source(other), name="cnn_va_expr7",
                             classes={"expression": AFFWILD2_EXPRESSIONS})
    assert_started_from(network, source, before, {"va"})
    assert report.heads_reinitialised["expression"].startswith("other classes: Surprise, ")

    respelled = tmp_path / "respelled.bundle.pt"
    make_bundle(path, out=respelled, preprocessing=Preprocessing(detector=None),
                labels=[name.lower() for name in AFFWILD2_EXPRESSIONS])
    network, before = fresh("cnn_va_expr7")
    report = initialise_from(network, read_weight_source(respelled), name="cnn_va_expr7",
                             classes={"expression": AFFWILD2_EXPRESSIONS})
    assert_started_from(network, source, before, {"va", "expression"})
    assert report.heads_reinitialised == {}


@pytest.fixture
def toy_name():
    register_model("frame", "toy_init", ModelSpec(ToyFrameNet, "toy", {"heads": {"va": 2}}))
    yield "toy_init"
    del registry.FRAME_MODELS["toy_init"]


@pytest.mark.parametrize(("source", "problem"), [
    ("feature_dim", "a cnn_va (feature_dim=100) network whose trunk differs from cnn_va_expr7's "
                    "(embedding.weight is 100x1024 in the source, 300x1024 in cnn_va_expr7)"),
    ("toy", "a toy_init network whose trunk differs from cnn_va_expr7's "
            "(the source lacks input_norm.weight)"),
])
def test_another_architecture_is_one_line_naming_the_first_tensor(tmp_path, toy_name, source,
                                                                  problem) -> None:
    path = tmp_path / "frame_model.pt"
    if source == "toy":
        save_model_file(path, create_model("frame", toy_name), kind="frame", name=toy_name)
    else:
        saved(path, "cnn_va", feature_dim=100)
    network, before = fresh("cnn_va_expr7")
    with pytest.raises(AffectTrackError, match=re.escape(problem)) as error:
        initialise_from(network, read_weight_source(path), name="cnn_va_expr7")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: init_from holds ")
    assert message.endswith("; pick a model of the same family")
    for key, value in network.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_a_file_that_holds_no_frame_model_is_one_line(tmp_path) -> None:
    good, _ = saved(tmp_path / "frame_model.pt", "cnn_va")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    sequence = tmp_path / "sequence_model.pt"
    save_model_file(sequence, create_model("sequence", "gru1"), kind="sequence", name="gru1")
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    bundle = tmp_path / "b.pt"
    make_bundle(good, out=bundle, preprocessing=Preprocessing(detector=None))
    newer = tmp_path / "newer.pt"
    payload = torch.load(bundle, weights_only=True)
    torch.save({**payload, "format_version": 99}, newer)
    code = tmp_path / "code.pt"
    torch.save({"format": "affecttrack-model/1", "x": Code(tmp_path / "code-ran")}, code)
    cases = {tmp_path / "missing.pt": "init_from file not found",
             damaged: "not an affecttrack frame model file or bundle",
             text: "not an affecttrack frame model file or bundle",
             sequence: "holds a sequence model, not a frame model",
             other: "not an affecttrack frame model file or bundle",
             newer: "bundle format 99 .* is newer than this affecttrack",
             code: "holds Python objects whose loading could run code"}
    for path, problem in cases.items():
        with pytest.raises(AffectTrackError, match=problem) as error:
            read_weight_source(path)
        assert "\n" not in str(error.value) and str(error.value).startswith(f"{path}: ")
        assert "weights_only" not in str(error.value).replace(" ", "_")
    assert not (tmp_path / "code-ran").exists()


def test_a_run_started_from_a_model_records_it_and_says_which_heads_start_afresh(
        tmp_path, monkeypatch, capsys) -> None:
    store = write_face_store(tmp_path / "store")
    source, _ = saved(tmp_path / "pretrained" / "frame_model.pt", "cnn_va")
    out = tmp_path / "run"
    settings = ["frame.model=cnn_va_expr7", "frame.task=combined", "frame.batch_size=8",
                "frame.max_steps=2", "frame.val_max_frames=8", "frame.optimizer=adam",
                "frame.precision=32-true", f"frame.init_from={source}"]
    args = ["train", "frame", "--store", str(store.path), "--out", str(out)]
    code, stdout, stderr = run_cli(monkeypatch, capsys, *args,
                                   *(item for s in settings for item in ("--set", s)))
    assert code == 0, stderr
    said = " ".join(stdout.split())
    assert f"init_from {source}: " in said
    assert "heads copied: va; heads re-initialised: expression (the source has no such head)" \
        in said
    recorded = json.loads((out / "run.json").read_text())["data"]["init_from"]
    assert recorded["path"] == str(source) and recorded["sha256"] == file_sha256(source)
    assert recorded["heads_copied"] == ["va"]
    assert recorded["heads_reinitialised"] == {"expression": "the source has no such head"}

    # Resumed (as if killed after its last checkpoint): the checkpoint holds the weights, so the
    # file is not read again, nothing is said of it, and run.json keeps the start's record.
    (out / "done.json").unlink()
    source.unlink()
    settings[3] = "frame.max_steps=3"
    code, stdout, stderr = run_cli(monkeypatch, capsys, *args,
                                   *(item for s in settings for item in ("--set", s)))
    assert code == 0, stderr
    assert "init_from" not in stdout
    assert json.loads((out / "run.json").read_text())["data"]["init_from"] == recorded


def test_a_run_from_a_file_of_another_architecture_is_refused_before_training(
        tmp_path, monkeypatch, capsys) -> None:
    store = write_face_store(tmp_path / "store")
    source, _ = saved(tmp_path / "frame_model.pt", "cnn_va", feature_dim=100)
    out = tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, "train", "frame", "--store", str(store.path),
                              "--out", str(out), "--set", f"frame.init_from={source}")
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and "embedding.weight" in stderr
    assert not (out / "checkpoints").exists()
