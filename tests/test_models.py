"""The paper's networks: shapes, Keras parameter counts, streaming state, the registry."""

from __future__ import annotations

import pytest
import torch

from affecttrack.errors import AffectTrackError, InputError
from affecttrack.models.cnn import FrameCNN
from affecttrack.models.registry import (
    create_frame_model,
    create_sequence_model,
    list_models,
    load_model_file,
    save_model_file,
)
from affecttrack.models.rnn import SequenceRNN

KERAS_CNN_PARAMS = 1_333_706   # keras_reference.py build_cnn().count_params()
KERAS_GRU3_PARAMS = 204_102    # keras_reference.py build_gru().count_params()


def keras_count(model: torch.nn.Module) -> int:
    """Parameters as Keras counts them: BatchNorm's moving mean and variance included."""
    stats = sum(buffer.numel() for name, buffer in model.named_buffers()
                if name.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in model.parameters()) + stats


def test_cnn_layer_shapes_follow_the_paper() -> None:
    model = FrameCNN()
    x = torch.rand(2, 1, 96, 96)
    shapes = []
    h = model.input_norm(x)
    for layer in model.trunk:
        h = layer(h)
        if isinstance(layer, (torch.nn.MaxPool2d, torch.nn.Conv2d, torch.nn.AvgPool2d)):
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(64, 96, 96), (64, 48, 48), (128, 44, 44), (128, 22, 22), (256, 18, 18),
                      (256, 2, 2)]
    assert model.forward_features(x).shape == (2, 300)
    assert model(x)["va"].shape == (2, 2)


def test_cnn_matches_keras_parameter_count_and_init() -> None:
    model = FrameCNN(heads={"va": 2})
    assert keras_count(model) == KERAS_CNN_PARAMS
    assert all(conv.bias is None for conv in model.trunk if isinstance(conv, torch.nn.Conv2d))
    assert model.input_norm.eps == pytest.approx(1e-3)
    assert torch.count_nonzero(model.embedding.bias) == 0


def test_input_normalisation_is_right_in_evaluation_after_a_few_batches() -> None:
    """Validation early in a short run must normalise inputs with the data's own statistics."""
    model = FrameCNN(heads={"va": 2}).train()
    batches = [0.45 + 0.25 * torch.rand(8, 1, 96, 96) for _ in range(5)]
    for x in batches:
        model(x)
    pixels = torch.cat(batches)
    assert model.input_norm.running_mean.item() == pytest.approx(pixels.mean().item(), abs=1e-3)
    assert model.input_norm.running_var.item() == pytest.approx(pixels.var().item(), rel=0.05)


def test_cnn_heads_and_eval_determinism() -> None:
    model = FrameCNN(heads={"va": 2, "expression": 7}).eval()
    x = torch.rand(3, 1, 96, 96)
    out = model(x)
    assert out["va"].shape == (3, 2) and out["expression"].shape == (3, 7)
    assert torch.equal(model(x)["va"], out["va"])  # dropout is off in eval mode
    assert model.head_sizes == {"va": 2, "expression": 7}


def test_gru3_matches_keras_parameter_count() -> None:
    assert sum(p.numel() for p in create_sequence_model("gru3").parameters()) == KERAS_GRU3_PARAMS


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_rnn_streaming_equals_one_pass(cell: str) -> None:
    torch.manual_seed(0)
    model = SequenceRNN(cell, hidden_sizes=(8, 6), input_dim=5).eval()
    x = torch.randn(2, 13, 5)
    whole = model(x)
    first, state = model.step(x[:, :6])
    second, _ = model.step(x[:, 6:], state)
    assert whole.shape == (2, 13, 2)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_rnn_steps_only_see_the_past() -> None:
    model = SequenceRNN("gru", hidden_sizes=(8,), input_dim=4).eval()
    x = torch.randn(1, 10, 4)
    changed = x.clone()
    changed[:, 6:] += 1.0
    torch.testing.assert_close(model(x)[:, :6], model(changed)[:, :6])


def test_registry_names_and_errors() -> None:
    names = list_models()
    paper = {"cnn_va", "cnn_expr7", "cnn_expr8", "rnn1", "gru1", "gru3", "lstm1", "lstm3"}
    assert paper <= set(names)
    assert list(list_models("sequence")) == sorted(n for n in names if not n.startswith("cnn"))
    assert "best" in names["gru3"]       # each name comes with a description
    assert create_frame_model("cnn_expr8").head_sizes == {"expression": 8}
    assert [layer.hidden_size for layer in create_sequence_model("gru3").layers] == [100, 100, 50]
    assert isinstance(create_sequence_model("rnn1").layers[0], torch.nn.RNN)
    with pytest.raises(AffectTrackError, match="unknown frame model 'cnn_nope'"):
        create_frame_model("cnn_nope")


def test_model_file_round_trip(tmp_path) -> None:
    model = create_sequence_model("gru1", input_dim=12)
    path = save_model_file(tmp_path / "m.pt", model, kind="sequence", name="gru1",
                           overrides={"input_dim": 12}, meta={"target": "many_to_one"})
    loaded, info = load_model_file(path, "sequence")
    x = torch.randn(1, 5, 12)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert info["meta"] == {"target": "many_to_one"} and not loaded.training
    with pytest.raises(InputError, match="holds a sequence model, expected a frame model"):
        load_model_file(path, "frame")


def test_model_file_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_model_file(tmp_path / "missing.pt", "frame")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=str(garbage)):
        load_model_file(garbage, "frame")
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an affecttrack model file"):
        load_model_file(tmp_path / "other.pt", "frame")
