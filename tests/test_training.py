"""Frame and sequence training: data selection, batches, resumable runs, sequence prediction."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from store_fixtures import write_face_store, write_feature_store

from affecttrack.errors import AffectTrackError
from affecttrack.features.store import FeatureStore
from affecttrack.models.precision import choose_precision, cpu_has_fast_bf16
from affecttrack.models.registry import (
    create_sequence_model,
    load_model_file,
    save_model_file,
)
from affecttrack.predictions.sequence import predict_sequences
from affecttrack.training.frame import FrameTrainConfig, train_frame_model
from affecttrack.training.frame_data import FaceFrames, capped, labelled_frames
from affecttrack.training.optim import optimizer_config
from affecttrack.training.sequence import (
    SequenceTrainConfig,
    train_sequence_model,
)
from affecttrack.training.sequence_data import SequenceWindows, SplitTable
from affecttrack.training.tasks import make_task
from affecttrack.training.trainer import RunConfig, TrainResult, build_trainer

TINY_FRAME = dict(batch_size=8, max_steps=2, val_max_frames=8, optimizer="adam", lr=1e-3,
                  precision="32-true")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_face_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def feature_store(store, tmp_path_factory) -> FeatureStore:
    """Features that are a fixed function of the labels, written directly in the store layout."""
    return FeatureStore.open(write_feature_store(store, tmp_path_factory.mktemp("features")))


def test_choose_precision_honours_requests_and_reads_cpu_flags(tmp_path) -> None:
    assert choose_precision("32-true") == "32-true"
    assert choose_precision("bf16-mixed") == "bf16-mixed"
    assert choose_precision("auto") in ("32-true", "bf16-mixed")
    with pytest.raises(AffectTrackError, match="unknown precision"):
        choose_precision("fp8")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert not cpu_has_fast_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_has_fast_bf16(cpuinfo)
    assert not cpu_has_fast_bf16(tmp_path / "absent")


def test_keras_decay_divides_lr_per_step() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = optimizer_config(params, "sgd", lr=0.01, momentum=0.9, weight_decay=0.0, decay=0.5)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / (1 + 0.5 * 4))
    assert "lr_scheduler" not in optimizer_config(params, "adam", lr=1e-3, momentum=0.9,
                                                  weight_decay=0.0, decay=0.0)


def _learning_rates(steps: int, name: str, **schedule) -> list[float]:
    """The learning rate of each of the first `steps` steps under `optimizer_config`."""
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = optimizer_config(params, name, lr=1e-3, momentum=0.9, weight_decay=0.0,
                              decay=0.0, **schedule)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_warmup_ramps_lr_linearly_then_holds() -> None:
    seen = _learning_rates(6, "adam", warmup_steps=4)
    assert seen == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_cosine_schedule_warms_up_then_falls_to_zero_at_the_budget() -> None:
    seen = _learning_rates(11, "adamw", warmup_steps=2, schedule="cosine", total_steps=10)
    params = [torch.nn.Parameter(torch.zeros(1))]
    assert seen[:2] == pytest.approx([5e-4, 1e-3 * 0.5 * (1 + np.cos(np.pi * 0 / 8))])
    assert seen[6] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 4 / 8)))   # half way
    assert all(a >= b for a, b in zip(seen[1:], seen[2:])) and seen[10] == pytest.approx(0.0)
    with pytest.raises(AffectTrackError, match="schedule cosine needs a step budget"):
        optimizer_config(params, "adam", lr=1e-3, momentum=0.9, weight_decay=0.0, decay=0.0,
                         schedule="cosine", total_steps=float("inf"))


def test_label_smoothing_softens_the_expression_loss() -> None:
    logits = torch.tensor([[8.0, 0.0, 0.0]])
    target = torch.tensor([0])
    plain = make_task("expression", heads={"expression": 3})
    smoothed = make_task("expression", heads={"expression": 3}, label_smoothing=0.3)
    assert smoothed.loss(logits, target) > plain.loss(logits, target) * 10
    assert smoothed.loss(logits, target) == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.3).item())


def test_early_stopping_follows_the_smoothed_score_after_min_epochs(store, tmp_path) -> None:
    """patience 0 stops at the first validation that is no better than the best; min_epochs
    holds it off, and with score_smoothing the logged moving average is what it follows."""
    config = FrameTrainConfig(**{**TINY_FRAME, "max_steps": -1}, model="cnn_expr7",
                              task="expression", augment=False, max_epochs=4, patience=0,
                              min_epochs=3, score_smoothing=0.5, val_check_interval=None)
    out = tmp_path / "smoothed"
    result = train_frame_model(store, out, config, progress=False)
    assert result.epochs >= 3
    logged = pd.concat(pd.read_csv(path) for path in sorted(out.glob("csv/*/metrics.csv")))
    scores = logged["val/macro_f1"].dropna().to_numpy()
    smoothed = logged["val/smoothed"].dropna().to_numpy()
    expected = [scores[0]]
    for score in scores[1:]:
        expected.append(0.5 * expected[-1] + 0.5 * score)
    assert len(smoothed) == len(scores) >= 3
    np.testing.assert_allclose(smoothed, expected, rtol=1e-5)


class _SaturatedScore(L.LightningModule):
    """Scores 0 at the first validation and 1.0 at every later one, as a tiny validation set
    soon does."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight - batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/macro_f1", float(self.current_epoch > 0))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_saturated_score_uses_up_the_patience_through_the_moving_average(tmp_path) -> None:
    config = RunConfig(score_smoothing=0.5, patience=2, max_epochs=40)
    trainer = build_trainer(tmp_path, monitor="val/macro_f1", config=config, precision="32",
                            progress=False)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 1)))
    trainer.fit(_SaturatedScore(), data, data)
    # the average climbs by 0.5, 0.25, 0.125, ...: from the 12th validation on, it stays within
    # 0.001 of its best, and two validations later the patience is spent (40 without the floor)
    assert 12 <= trainer.current_epoch <= 15


def test_frame_batches_hold_the_right_faces_and_labels(store) -> None:
    frames = labelled_frames(store.index, "train", "va")
    index = store.index
    assert len(frames) == ((index["split"] == "train") & (index["row"] >= 0)
                           & index["valence"].notna()).sum()
    dataset = FaceFrames(Path(store.path) / "faces.npy", frames)
    picks = np.array([5, 0, 17, 3])
    x, y = dataset.batch(picks)
    assert x.shape == (4, 1, 96, 96) and x.dtype == torch.float32
    by_row = index.set_index("row")
    for image, target in zip(x, y):
        # each image comes with its own labels, whatever order the batch was read in
        row = next(r for r in frames.rows[picks]
                   if np.allclose(store.faces[r] / 255.0, image[0].numpy()))
        np.testing.assert_allclose(target.numpy(), by_row.loc[row, ["valence", "arousal"]]
                                   .to_numpy(np.float32))
    expression = labelled_frames(store.index, "val", "expression")
    assert expression.targets.dtype == np.int64 and (expression.targets >= 0).all()
    assert len(capped(frames, 10, seed=0)) == 10
    assert np.array_equal(capped(frames, 10, seed=0).rows, capped(frames, 10, seed=0).rows)


@pytest.mark.parametrize("augment", ["paper", "strong"])
def test_augmented_batches_stay_images_in_range(store, augment) -> None:
    frames = labelled_frames(store.index, "train", "va")
    x, _ = FaceFrames(Path(store.path) / "faces.npy", frames, augment=augment).batch(np.arange(8))
    assert x.shape == (8, 1, 96, 96) and 0.0 <= x.min() and x.max() <= 1.0


def test_train_frame_model_writes_a_complete_run(store, tmp_path) -> None:
    out = tmp_path / "frame"
    config = FrameTrainConfig(**{**TINY_FRAME, "max_steps": 3}, val_check_interval=1)
    result = train_frame_model(store, out, config, progress=False)
    assert result.global_step == 3 and result.monitor == "val/ccc"
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3          # the latest state, whichever step scored best
    assert result.checkpoint.is_file()
    assert -1.0 <= result.best_val_ccc <= 1.0
    model, info = load_model_file(result.model_path, "frame")
    assert info["name"] == "cnn_va" and model(torch.rand(1, 1, 96, 96))["va"].shape == (1, 2)
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["train_frames_balanced"] < run["data"]["train_frames"]
    assert run["data"]["val_frames_used"] == 8 < run["data"]["val_frames"]
    assert run["config"]["balance"] == "subset3"
    metrics = pd.read_csv(out / "csv" / "version_0" / "metrics.csv")
    assert {"train/loss_epoch", "val/ccc_valence", "val/ccc_arousal", "val/ccc"} <= set(metrics)
    assert metrics["val/ccc"].notna().sum() == 3     # one validation per step, as configured
    assert any((out / "tensorboard").iterdir())
    # finished: returned at once, even if asked for more steps
    again = train_frame_model(store, out, FrameTrainConfig(**{**TINY_FRAME, "max_steps": 50},
                                                           val_check_interval=1), progress=False)
    assert again == result and isinstance(TrainResult.read(out), TrainResult)


def test_interrupted_frame_run_resumes_from_last_checkpoint(store, tmp_path) -> None:
    out = tmp_path / "frame"
    train_frame_model(store, out, FrameTrainConfig(**TINY_FRAME), progress=False)
    (out / "done.json").unlink()   # as if the process died after its last checkpoint
    result = train_frame_model(store, out, FrameTrainConfig(**{**TINY_FRAME, "max_steps": 3}),
                               progress=False)
    assert result.global_step == 3
    assert (out / "csv" / "version_0" / "metrics.csv").is_file()   # first session's log kept
    with pytest.raises(AffectTrackError, match="different settings.*lr"):
        (out / "done.json").unlink()
        train_frame_model(store, out, FrameTrainConfig(**{**TINY_FRAME, "lr": 0.5}),
                          progress=False)


def test_expression_task_trains_a_classifier(store, tmp_path) -> None:
    config = FrameTrainConfig(**{**TINY_FRAME, "max_steps": 1}, model="cnn_expr7",
                              task="expression", augment=False)   # stops mid-epoch: validates
    result = train_frame_model(store, tmp_path / "expr", config, progress=False)
    assert result.monitor == "val/macro_f1" and 0.0 <= result.best_score <= 1.0
    with pytest.raises(AffectTrackError, match="needs a model with a 'va' head"):
        train_frame_model(store, tmp_path / "bad", FrameTrainConfig(model="cnn_expr7"),
                          progress=False)


def test_windows_never_cross_gaps_and_targets_align(store, feature_store) -> None:
    table = SplitTable.build(store.index, "train")
    starts = table.training_windows(5, 1, "many_to_many")
    positions = starts[:, None] + np.arange(5)
    assert table.has_face[positions].all() and table.labelled[positions].all()
    assert (np.diff(table.frames[positions], axis=1) == 1).all()
    assert (table.videos[positions] == table.videos[positions[:, :1]]).all()
    features = table.gather(feature_store.features)
    x, y = SequenceWindows(features, table.targets, starts, 5, "many_to_many").batch(
        np.arange(len(starts)))
    torch.testing.assert_close(x[..., :2], y)          # the fixture's features carry the labels
    one = table.training_windows(5, 1, "many_to_one")
    x1, y1 = SequenceWindows(features, table.targets, one, 5, "many_to_one").batch(
        np.arange(len(one)))
    assert y1.shape == (len(one), 2)
    torch.testing.assert_close(y1, table.targets[torch.from_numpy(one) + 5])


def test_train_sequence_model_and_predict_whole_runs(store, feature_store, tmp_path) -> None:
    config = SequenceTrainConfig(model="gru1", window=6, stride=2, batch_size=8, max_steps=2)
    result = train_sequence_model(store, feature_store, tmp_path / "seq", config, progress=False)
    assert result.model_path.is_file() and result.global_step == 2
    predictions = predict_sequences(store, feature_store, result.model_path, split="val")
    val = store.index[(store.index["split"] == "val") & (store.index["row"] >= 0)]
    assert list(predictions.columns) == ["video", "frame", "valence", "arousal"]
    assert sorted(predictions["frame"]) == sorted(val["frame"])   # every face, labelled or not
    assert predictions[["valence", "arousal"]].notna().all().all()
    with pytest.raises(AffectTrackError, match="no 60-frame window"):
        train_sequence_model(store, feature_store, tmp_path / "long",
                             SequenceTrainConfig(window=60), progress=False)


def test_many_to_one_predictions_are_shifted_by_one(store, feature_store, tmp_path) -> None:
    model = create_sequence_model("gru1", input_dim=300).eval()
    path = save_model_file(tmp_path / "m2o.pt", model, kind="sequence", name="gru1",
                           overrides={"input_dim": 300}, meta={"target": "many_to_one"})
    got = predict_sequences(store, feature_store, path, split="val")
    val = store.index[store.index["split"] == "val"].sort_values("frame")
    first_run = val[val["frame"] < 8]           # frames 1..6; frame 7 has no face
    x = torch.from_numpy(np.asarray(feature_store.features[first_run["row"].to_numpy()]))
    with torch.no_grad():
        out = model(x[None])[0].numpy()
    run = got[got["frame"] < 8].sort_values("frame")[["valence", "arousal"]].to_numpy()
    np.testing.assert_allclose(run[1:], out[:-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run[0], out[0], rtol=1e-5, atol=1e-6)


def test_sequence_training_refuses_misaligned_features(store, tmp_path) -> None:
    np.save(tmp_path / "features.npy", np.zeros((3, 300), np.float32))
    np.save(tmp_path / "frame_predictions.npy", np.zeros((3, 2), np.float32))
    wrong = FeatureStore.open(tmp_path)
    with pytest.raises(AffectTrackError, match="holds features of 3 faces"):
        train_sequence_model(store, wrong, tmp_path / "seq", progress=False)
    shutil.rmtree(tmp_path / "seq", ignore_errors=True)


def test_combined_task_masks_missing_labels_and_trains_both_heads(store, tmp_path) -> None:
    from affecttrack.training.frame_data import frame_set
    from affecttrack.training.tasks import make_task
    task = make_task("combined", heads={"va": 2, "expression": 3})
    outputs = {"va": torch.randn(4, 2, requires_grad=True),
               "expression": torch.randn(4, 3, requires_grad=True)}
    nan = float("nan")
    only_classes = torch.tensor([[nan, nan, 0.0], [nan, nan, 2.0], [nan, nan, 1.0],
                                 [nan, nan, -1.0]])
    loss = task.loss(outputs, only_classes)
    loss.backward()
    assert torch.isfinite(loss) and outputs["va"].grad.abs().sum() == 0   # no VA label: no pull
    expected = torch.nn.functional.cross_entropy(outputs["expression"][:3],
                                                 torch.tensor([0, 2, 1]))
    assert loss.item() == pytest.approx(expected.item())
    index = store.index[store.index["row"] >= 0].copy()
    index.loc[index.index[::2], "valence"] = np.nan         # half the frames lack valence/arousal
    index.loc[index.index[1::2], "expression"] = -1          # the other half lack a class
    combined = frame_set(index, "combined")
    kept = index[index["valence"].notna() | (index["expression"] >= 0)]   # either label will do
    assert len(combined) == len(kept) > len(frame_set(index, "va"))
    assert np.isnan(combined.targets[:, 0]).sum() == kept["valence"].isna().sum() > 0
    assert (combined.targets[:, 2] == -1).sum() == (kept["expression"] < 0).sum() > 0
    config = FrameTrainConfig(**{**TINY_FRAME, "max_steps": 2}, model="cnn_va_expr7",
                              task="combined", balance="none", augment=False)
    result = train_frame_model(store, tmp_path / "combined", config, progress=False)
    assert result.monitor == "val/score" and result.global_step == 2
    with pytest.raises(AffectTrackError, match="two of the 'va', 'expression' and 'au' heads"):
        make_task("combined", heads={"expression": 7})


AUS = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")


@pytest.fixture(scope="module")
def au_store(tmp_path_factory):
    return write_face_store(tmp_path_factory.mktemp("au_store"), action_units=AUS)


def test_action_unit_loss_counts_known_entries_only_and_weighs_positives() -> None:
    from affecttrack.training.tasks import ActionUnitTask, positive_weights
    logits = torch.randn(3, 2, requires_grad=True)
    target = torch.tensor([[1.0, -1.0], [0.0, 1.0], [-1.0, -1.0]])
    loss = ActionUnitTask(2).loss(logits, target)
    loss.backward()
    known = target >= 0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], target[known])
    assert loss.item() == pytest.approx(expected.item())
    assert logits.grad[2].abs().sum() == 0 and logits.grad[0, 1] == 0   # unknown: no pull
    # one unit active in 1 of 5 known frames: its active frames weigh 4 (2 with power 0.5)
    assert positive_weights([1, 0], [5, 3]) == pytest.approx((4.0, 1.0))
    assert positive_weights([1, 0], [5, 3], power=0.5) == pytest.approx((2.0, 1.0))
    weighted = ActionUnitTask(2, pos_weights=(4.0, 1.0)).loss(logits, target)
    assert weighted.item() > loss.item()         # the active AU1 frame now counts four times


def test_three_head_task_scores_each_head_and_flattens_sequences() -> None:
    from affecttrack.training.tasks import make_task
    task = make_task("combined", heads={"va": 2, "expression": 3, "au": 2})
    assert task.head == "va+expression+au" and task.monitor == "val/score"
    nan = float("nan")
    target = torch.tensor([[0.5, 0.1, 1.0, 1.0, 0.0], [-0.5, 0.2, -1.0, -1.0, -1.0],
                           [nan, nan, 2.0, 0.0, 1.0], [0.1, -0.3, 0.0, -1.0, 1.0]])
    outputs = {"va": target[:, :2].nan_to_num(0.0).clone(),
               "expression": torch.nn.functional.one_hot(target[:, 2].clamp(min=0).long(),
                                                         3).float() * 10,
               "au": (target[:, 3:] * 20 - 10)}
    metric = task.make_metric()
    task.update(metric, outputs, target)
    scores = task.scores(metric.compute())
    assert scores["val/au_f1"] == pytest.approx(1.0) and scores["val/accuracy"] == 1.0
    assert scores["val/score"] == pytest.approx(
        (scores["val/ccc"] + scores["val/macro_f1"] + scores["val/au_f1"]) / 3)
    # (B, T, C) sequences are scored frame by frame, the same as (B * T, C) rows
    per_frame = task.loss(outputs, target)
    as_sequence = task.loss({k: v.reshape(2, 2, -1) for k, v in outputs.items()},
                            target.reshape(2, 2, -1))
    assert as_sequence.item() == pytest.approx(per_frame.item())


def test_frame_model_with_an_action_unit_head_trains_on_the_stores_units(au_store,
                                                                         tmp_path) -> None:
    from affecttrack.features.head_outputs import frame_head_outputs
    from affecttrack.training.frame_data import frame_set
    combined = frame_set(au_store.index, "combined", AUS)
    assert combined.targets.shape[1] == 3 + len(AUS)
    assert (combined.targets[:, 3:] == -1).any() and (combined.targets[:, 3:] == 1).any()
    config = FrameTrainConfig(**TINY_FRAME, model="cnn_va_expr7_au8", task="combined",
                              balance="none", class_balance="sqrt_weights", augment=False)
    result = train_frame_model(au_store, tmp_path / "au", config, progress=False)
    run = json.loads((tmp_path / "au" / "run.json").read_text())
    assert run["data"]["action_units"] == list(AUS)
    assert len(run["data"]["train_au_counts"]["active"]) == len(AUS)
    assert load_model_file(result.model_path, "frame")[1]["meta"]["action_units"] == list(AUS)
    outputs = frame_head_outputs(au_store, result.model_path, np.arange(5))
    assert outputs["au"].shape == (5, len(AUS))
    assert ((outputs["au"] > 0) & (outputs["au"] < 1)).all()     # probabilities
    with pytest.raises(AffectTrackError, match="12 action-unit outputs but the store annotates 8"):
        train_frame_model(au_store, tmp_path / "wrong", FrameTrainConfig(
            **TINY_FRAME, model="cnn_va_expr8_au12", task="combined"), progress=False)


def test_combined_sequence_model_has_the_stores_heads(au_store, feature_store,
                                                     tmp_path) -> None:
    assert au_store.faces.shape == feature_store.features.shape[:1] + (96, 96)   # same faces
    config = SequenceTrainConfig(model="gru1", task="combined", window=6, stride=2,
                                 batch_size=8, max_steps=2)
    result = train_sequence_model(au_store, feature_store, tmp_path / "seq", config,
                                  progress=False)
    assert result.monitor == "val/score"
    model, info = load_model_file(result.model_path, "sequence")
    assert model.head_sizes == {"va": 2, "expression": 7, "au": len(AUS)}
    assert info["meta"]["action_units"] == list(AUS)
    predictions = predict_sequences(au_store, feature_store, result.model_path, split="val")
    classes = [name.lower() for name in au_store.expression_names]
    assert list(predictions.columns) == ["video", "frame", "valence", "arousal", *classes,
                                         "expression", *AUS]
    assert predictions[classes].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert set(predictions["expression"]) <= set(au_store.expression_names)
    assert predictions[list(AUS)].stack().between(0, 1).all()
    only_two = train_sequence_model(au_store, feature_store, tmp_path / "seq2", SequenceTrainConfig(
        model="gru1", task="combined", heads=["va", "au"], window=6, stride=2, batch_size=8,
        max_steps=1), progress=False)
    assert load_model_file(only_two.model_path, "sequence")[0].head_sizes == {"va": 2,
                                                                              "au": len(AUS)}


def test_a_runs_initial_weights_depend_on_its_seed_only(au_store, tmp_path) -> None:
    """Nothing may draw from torch's generator between seeding and building the network (a
    model built only to read its heads once did, and shifted every seeded result)."""
    import lightning as L

    from affecttrack.models.registry import create_frame_model
    config = FrameTrainConfig(**{**TINY_FRAME, "lr": 0.0, "max_steps": 1}, seed=3,
                              model="cnn_va_expr7_au8", task="combined", augment=False,
                              balance="none")
    result = train_frame_model(au_store, tmp_path / "run", config, progress=False)
    trained, _ = load_model_file(result.model_path, "frame")
    L.seed_everything(3, verbose=False)
    fresh = create_frame_model("cnn_va_expr7_au8")
    for name, weight in fresh.state_dict().items():
        if "running" not in name and "num_batches" not in name:    # BatchNorm statistics move
            torch.testing.assert_close(trained.state_dict()[name], weight, msg=name)
