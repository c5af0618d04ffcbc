"""Model bundles: one file with both networks, labels and preprocessing, read back safely."""

from __future__ import annotations

import pytest
import torch
from cli_runner import run_cli

from affecttrack import __version__
from affecttrack.errors import InputError
from affecttrack.inference.bundle import (
    Preprocessing,
    load_bundle,
    make_bundle,
)
from affecttrack.labels import AFFWILD2_EXPRESSIONS, CKPLUS_EXPRESSIONS
from affecttrack.models.registry import (
    BUNDLE_FORMAT_VERSION,
    create_model,
    save_model_file,
)


def model_file(path, kind, name, seed=0, meta=None, **overrides):
    torch.manual_seed(seed)
    model = create_model(kind, name, **overrides).eval()
    if kind == "sequence":
        width = model.input_mean.shape[0]
        model.standardize_inputs(torch.randn(width), torch.rand(width) + 0.5)
    else:
        model.input_norm.running_mean.fill_(0.4)
    return save_model_file(path, model, kind=kind, name=name, overrides=overrides,
                           meta=meta), model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    frame = model_file(folder / "frame_model.pt", "frame", "cnn_va",
                       heads={"va": 2, "expression": 7})
    sequence = model_file(folder / "sequence_model.pt", "sequence", "gru3",
                          meta={"target": "many_to_one", "window": 100},
                          hidden_sizes=(8, 8, 4))
    return frame, sequence


def test_a_bundle_gives_back_both_networks_labels_and_preprocessing(files, tmp_path) -> None:
    (frame_path, frame), (sequence_path, sequence) = files
    preprocessing = Preprocessing(detector="haar", detector_settings={"min_neighbors": 3},
                                  margin=0.2)
    made = make_bundle(frame_path, sequence_path, out=tmp_path / "b.pt",
                       preprocessing=preprocessing)
    bundle = load_bundle(tmp_path / "b.pt")
    x = torch.rand(3, 1, 96, 96)
    z = torch.randn(2, 9, 300)
    with torch.inference_mode():
        for loaded in (made, bundle):
            assert not loaded.frame.training and not loaded.sequence.training
            want, got = frame(x), loaded.frame(x)
            assert want.keys() == got.keys() == {"va", "expression"}
            for head in want:
                torch.testing.assert_close(got[head], want[head])
            torch.testing.assert_close(loaded.sequence(z), sequence(z))
    assert bundle.labels == AFFWILD2_EXPRESSIONS          # 7 classes: Aff-Wild2's by default
    assert bundle.preprocessing == preprocessing
    assert bundle.sequence_target == "many_to_one"
    assert bundle.meta["format_version"] == BUNDLE_FORMAT_VERSION
    assert bundle.meta["affecttrack_version"] == __version__
    assert bundle.meta["sequence"]["meta"]["window"] == 100
    assert bundle.meta["sources"]["frame"] == str(frame_path)


def test_frame_only_bundle_and_named_labels(tmp_path) -> None:
    path, _ = model_file(tmp_path / "f.pt", "frame", "cnn_expr8")
    assert make_bundle(path, out=tmp_path / "b8.pt").labels == CKPLUS_EXPRESSIONS
    path, _ = model_file(tmp_path / "f5.pt", "frame", "cnn_va", heads={"expression": 3})
    with pytest.raises(InputError, match="name them with --labels"):
        make_bundle(path, out=tmp_path / "b.pt")
    with pytest.raises(InputError, match="2 labels given for an expression head of 3"):
        make_bundle(path, out=tmp_path / "b.pt", labels=["calm", "joy"])
    make_bundle(path, out=tmp_path / "b.pt", labels=["a", "b", "c"])
    bundle = load_bundle(tmp_path / "b.pt")
    assert bundle.labels == ("a", "b", "c") and bundle.sequence is None
    assert bundle.sequence_target is None
    named = ["Happiness", "Neutral", "Surprise"]   # as a model file from training names them
    path, _ = model_file(tmp_path / "f6.pt", "frame", "cnn_va", heads={"expression": 3},
                         meta={"expressions": named})
    assert make_bundle(path, out=tmp_path / "b3.pt").labels == tuple(named)
    assert make_bundle(path, out=tmp_path / "b4.pt", labels=["x", "y", "z"]).labels == (
        "x", "y", "z")


def test_a_sequence_model_must_read_the_frame_models_features(files, tmp_path) -> None:
    (frame_path, _), _ = files
    sequence_path, _ = model_file(tmp_path / "s.pt", "sequence", "gru1", input_dim=64)
    with pytest.raises(InputError, match="reads 64-d features, the frame model makes 300-d"):
        make_bundle(frame_path, sequence_path, out=tmp_path / "b.pt")


def edited(source, target, change):
    payload = torch.load(source, weights_only=True)
    change(payload)
    torch.save(payload, target)
    return target


def test_problems_are_one_line_input_errors_naming_the_file(files, tmp_path) -> None:
    (frame_path, _), (sequence_path, _) = files
    good = tmp_path / "good.pt"
    make_bundle(frame_path, sequence_path, out=good)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    newer = edited(good, tmp_path / "newer.pt", lambda p: p.update(format_version=99))
    wrong = edited(good, tmp_path / "wrong.pt", lambda p: p["sequence"]["state_dict"].update(
        {"head.weight": torch.zeros(2, 5)}))
    other = edited(good, tmp_path / "other.pt", lambda p: p.update(format="something-else"))
    cases = {text: "not an affecttrack bundle", tmp_path / "missing.pt": "bundle not found",
             newer: "bundle format 99 .* is newer than this affecttrack",
             wrong: "weights do not fit model 'gru3'",
             other: "not an affecttrack bundle; make one with `affecttrack bundle",
             frame_path: "plain frame model file, not a bundle; make one with "
                         "`affecttrack bundle --frame"}
    for path, message in cases.items():
        with pytest.raises(InputError, match=message) as error:
            load_bundle(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)


class _Payload:
    """Unpickling this would create a file: a bundle must never be loaded that way."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_file_with_pickled_code_is_refused_without_running_it(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "affecttrack-bundle", "x": _Payload(marker)}, path)
    with pytest.raises(InputError, match="could run code"):
        load_bundle(path)
    assert not marker.exists()


def test_bundle_command_writes_a_bundle(files, tmp_path, monkeypatch, capsys) -> None:
    (frame_path, _), (sequence_path, _) = files
    out = tmp_path / "b.pt"
    code, stdout, _ = run_cli(monkeypatch, capsys, "bundle", "--frame", str(frame_path),
                              "--sequence", str(sequence_path), "--out", str(out),
                              "--detector", "none")
    assert code in (0, None) and str(out) in stdout
    assert load_bundle(out).preprocessing.detector is None
    code, _, err = run_cli(monkeypatch, capsys, "bundle", "--frame", str(sequence_path),
                           "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and "expected a frame model" in err
