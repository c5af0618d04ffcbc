"""ONNX export: ONNX Runtime gives PyTorch's numbers, batch and sequence length stay dynamic,
and the recurrent state carries over from chunk to chunk."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from test_bundle import model_file

from affecttrack.inference.bundle import make_bundle
from affecttrack.inference.export import export_onnx


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def frame_file(tmp_path_factory):
    path, model = model_file(tmp_path_factory.mktemp("frame") / "frame_model.pt", "frame",
                             "cnn_va", heads={"va": 2, "expression": 7})
    return path, model


@pytest.mark.parametrize("cell, hidden", [("gru", (8, 8, 4)), ("lstm", (6, 5)), ("rnn", (7,))])
def test_onnx_runtime_agrees_with_torch(ort, frame_file, tmp_path, monkeypatch, capsys, cell,
                                        hidden) -> None:
    frame_path, frame = frame_file
    sequence_path, sequence = model_file(tmp_path / "seq.pt", "sequence", f"{cell}1",
                                         hidden_sizes=hidden)
    make_bundle(frame_path, sequence_path, out=tmp_path / "b.pt")
    code, _, _ = run_cli(monkeypatch, capsys, "export", str(tmp_path / "b.pt"),
                         "--out", str(tmp_path / "onnx"))
    assert code in (0, None)
    info = json.loads((tmp_path / "onnx" / "onnx.json").read_text())

    images = torch.rand(5, 1, 96, 96)          # exported with a batch of 2: n is dynamic
    session = ort.InferenceSession(str(tmp_path / "onnx" / "frame.onnx"))
    names = [o["name"] for o in info["frame"]["outputs"]]
    assert names == ["features", "va", "expression"]
    got = dict(zip(names, session.run(None, {"image": images.numpy()})))
    with torch.inference_mode():
        want = {"features": frame.forward_features(images), **frame(images)}
    for name in names:
        np.testing.assert_allclose(got[name], want[name].numpy(), atol=1e-4, err_msg=name)

    session = ort.InferenceSession(str(tmp_path / "onnx" / "sequence.onnx"))
    states = info["sequence"]["state"]
    shapes = {i["name"]: i["shape"] for i in info["sequence"]["inputs"]}
    assert shapes["features"] == ["b", "t", 300]
    x = torch.randn(3, 17, 300)                  # two chunks of different lengths
    state = {name: np.zeros((3, shapes[name][1]), np.float32) for name in states}
    outputs = []
    for chunk in (x[:, :11], x[:, 11:]):
        out, *new = session.run(None, {"features": chunk.numpy(), **state})
        state = dict(zip(states, new))
        outputs.append(out)
    with torch.inference_mode():
        want, want_state = sequence.step(x)
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), want.numpy(), atol=1e-4)
    flat = [t for layer in want_state for t in (layer if cell == "lstm" else (layer,))]
    for name, tensor in zip(states, flat):
        np.testing.assert_allclose(state[name], tensor[0].numpy(), atol=1e-4, err_msg=name)
    assert info["head_labels"]["expression"][0] == "Neutral"


def test_frame_only_bundle_exports_the_frame_network(ort, frame_file, tmp_path) -> None:
    make_bundle(frame_file[0], out=tmp_path / "b.pt")
    info = export_onnx(tmp_path / "b.pt", tmp_path / "onnx")
    assert info["sequence"] is None
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["frame.onnx", "onnx.json"]


def test_missing_onnx_is_one_line_naming_the_extra(frame_file, tmp_path, monkeypatch,
                                                    capsys) -> None:
    make_bundle(frame_file[0], out=tmp_path / "b.pt")
    monkeypatch.setitem(sys.modules, "onnx", None)
    code, _, err = run_cli(monkeypatch, capsys, "export", str(tmp_path / "b.pt"),
                           "--out", str(tmp_path / "onnx"))
    assert code == 2 and err.count("\n") == 1
    assert "affecttrack[onnx]" in err and "onnx is missing" in err


def test_a_plain_model_file_is_refused_with_how_to_bundle_it(frame_file, tmp_path, monkeypatch,
                                                             capsys) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "export", str(frame_file[0]),
                           "--out", str(tmp_path / "onnx"))
    assert code == 2 and err.count("\n") == 1
    assert str(frame_file[0]) in err and "affecttrack bundle --frame" in err


def test_a_three_head_bundle_names_its_heads_and_units(ort, tmp_path) -> None:
    frame_path, _ = model_file(tmp_path / "f.pt", "frame", "cnn_va_expr7_au8")
    heads = {"va": 2, "expression": 7, "au": 8}
    sequence_path, sequence = model_file(tmp_path / "s.pt", "sequence", "gru1",
                                         hidden_sizes=(6,), heads=heads)
    make_bundle(frame_path, sequence_path, out=tmp_path / "b.pt")
    info = export_onnx(tmp_path / "b.pt", tmp_path / "onnx")
    assert info["head_labels"]["au"][:3] == ["AU1", "AU2", "AU4"]
    assert info["sequence"]["outputs"][0]["name"] == "outputs"
    assert info["sequence"]["outputs"][0]["shape"] == ["b", "t", 17]
    assert info["sequence"]["heads"] == {"va": [0, 2], "expression": [2, 9], "au": [9, 17]}
    assert info["sequence"]["max_abs_diff_vs_torch"] < 1e-4
