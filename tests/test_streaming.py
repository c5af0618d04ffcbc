"""Streaming sequence predictions: same numbers as offline prediction, state carried, gaps reset."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch
from store_fixtures import write_face_store

from affecttrack.errors import AffectTrackError
from affecttrack.features.store import FeatureStore
from affecttrack.inference.streaming import SequenceStream
from affecttrack.models.registry import create_sequence_model, save_model_file
from affecttrack.predictions.sequence import predict_sequences

DIM = 300


def gru(hidden=(16, 12), seed: int = 0, cell: str = "gru"):
    torch.manual_seed(seed)
    model = create_sequence_model(f"{cell}1", hidden_sizes=hidden)
    with torch.no_grad():   # standardisation statistics that matter, as a trained model has
        model.standardize_inputs(torch.randn(DIM) * 0.1, torch.rand(DIM) + 0.5)
    return model.eval()


def one_pass(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)[None])[0].numpy()


def features(frames: int, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(frames, DIM)) * scale).astype(np.float32)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_stream_in_any_chunks_equals_one_pass_over_the_run(cell) -> None:
    model = gru(cell=cell)
    x = features(250)
    stream = SequenceStream(model)
    sizes = [1, 1, 7, 40, 1, 100, 3, 97]
    bounds = np.cumsum([0, *sizes])
    got = [stream.push(x[a]) if b - a == 1 else stream.push(x[a:b])
           for a, b in pairwise(bounds)]
    np.testing.assert_allclose(np.concatenate(got), one_pass(model, x), atol=1e-5)
    assert stream.last_frame == 250


def test_a_gap_longer_than_max_gap_starts_a_new_run() -> None:
    model = gru()
    x = features(40)
    frames = np.r_[1:11, 12:21, 30:51]          # one frame missing after 10, nine after 20
    first, second, third = x[:10], x[10:19], x[19:]
    for max_gap, runs in [(0, [first, second, third]), (1, [np.r_[first, second], third]),
                          (9, [x])]:
        stream = SequenceStream(model, max_gap=max_gap)
        got = np.concatenate([stream.push(x[:15], frames[:15]), stream.push(x[15:], frames[15:])])
        want = np.concatenate([one_pass(model, run) for run in runs])
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"max_gap={max_gap}")


def test_reset_forgets_the_run() -> None:
    model = gru()
    x = features(20)
    stream = SequenceStream(model)
    stream.push(x[:10])
    stream.reset()
    np.testing.assert_allclose(stream.push(x[10:]), one_pass(model, x[10:]), atol=1e-5)


def test_bad_frame_numbers_are_refused() -> None:
    stream = SequenceStream(gru())
    stream.push(features(3), [5, 6, 7])
    with pytest.raises(AffectTrackError, match="must increase"):
        stream.push(features(2), [7, 8])
    with pytest.raises(AffectTrackError, match="must increase"):
        stream.push(features(2), [9, 9])
    with pytest.raises(AffectTrackError, match="2 feature rows but 3 frame numbers"):
        stream.push(features(2), [9, 10, 11])
    with pytest.raises(AffectTrackError, match=r"takes \(300,\) features per frame"):
        stream.push(features(2)[:, :64])
    assert stream.push(np.zeros((0, DIM), np.float32)).shape == (0, 2)


@pytest.mark.parametrize("target", ["many_to_many", "many_to_one"])
def test_stream_equals_predict_sequences_per_video(tmp_path, target) -> None:
    """The offline reference: one pass per gap-free run, many-to-one outputs shifted by one."""
    store = write_face_store(tmp_path / "store", frames=20)   # frame 7 of every video: no face
    np.save(tmp_path / "features.npy", features(store.faces.shape[0], seed=3))
    np.save(tmp_path / "frame_predictions.npy", np.zeros((store.faces.shape[0], 2), np.float32))
    model = gru()
    path = save_model_file(tmp_path / "seq.pt", model, kind="sequence", name="gru1",
                           overrides={"hidden_sizes": (16, 12)}, meta={"target": target})
    want = predict_sequences(store, FeatureStore.open(tmp_path), path, split=None)
    faces = store.index[store.index["row"] >= 0]
    feats = np.load(tmp_path / "features.npy")
    for video, rows in faces.groupby("video"):
        stream = SequenceStream(model, many_to_one=target == "many_to_one")
        got = np.concatenate([stream.push(feats[rows["row"].to_numpy()[i:i + 4]],
                                          rows["frame"].to_numpy()[i:i + 4])
                              for i in range(0, len(rows), 4)])
        expected = want[want["video"] == video].sort_values("frame")
        np.testing.assert_allclose(got, expected[["valence", "arousal"]].to_numpy(), atol=1e-5)


def test_many_to_one_stream_matches_the_windowed_reference_while_it_has_seen_one_window() -> None:
    """The public code predicted frame t (1-based in a run) from the window of frames t-L..t-1,
    training/sequence_data.py's many_to_one target (inputs s..s+L-1, target s+L). The stream
    predicts frame t from frames 1..t-1: the same frames for t = L+1, and for t <= L the whole
    history there is (the window rule on a shorter window); from t = L+2 on the stream has seen
    more than L frames and the two differ by what the network remembers from further back."""
    window, frames = 100, 130
    model = gru(hidden=(16,))
    with torch.no_grad():   # update gate biased open: memory reaching well past 100 frames
        model.layers[0].bias_ih_l0[16:32].fill_(4.0)
    x = features(frames, scale=0.1)
    streamed = SequenceStream(model, many_to_one=True).push(x)      # row t-1 is frame t

    def last_output(first: int, last: int) -> np.ndarray:    # frames first..last, 1-based
        return one_pass(model, x[first - 1:last])[-1]

    np.testing.assert_allclose(streamed[window], last_output(1, window), atol=1e-5)   # t = L+1
    for t in range(2, window + 1):
        np.testing.assert_allclose(streamed[t - 1], last_output(1, t - 1), atol=1e-5)
    np.testing.assert_allclose(streamed[0], last_output(1, 1), atol=1e-5)    # nothing before it
    after = [np.abs(streamed[t - 1] - last_output(t - window, t - 1)).max()
             for t in range(window + 2, frames + 1)]
    assert min(after) > 1e-4
