"""`affecttrack run CONFIG`: a YAML file names the experiment; bad files are one-line errors."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_cli
from store_fixtures import write_face_store

TINY_CLASSIFICATION = """\
experiment: classification
classification:
  store: {store}
  protocol: kfold
  folds: 2
  val_fraction: 0.25
frame:
  model: cnn_expr7
  batch_size: 8
  max_steps: 50
  optimizer: adam
  lr: 1.0e-3
  precision: 32-true
  augment: false
  class_balance: downsample
"""


def test_run_classification_config_with_overrides(monkeypatch, capsys, tmp_path) -> None:
    store = write_face_store(tmp_path / "store", frames=15,
                             videos={f"s{i}": "train" for i in range(6)})
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CLASSIFICATION.format(store=store.path))
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "run", str(config), "--out", str(out),
                                "--set", "frame.max_steps=2")
    assert code == 0, err
    assert "mean ± std" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["folds"]) == ["fold_01", "fold_02"]
    run = json.loads((out / "folds" / "fold_01" / "model" / "run.json").read_text())
    assert run["config"]["max_steps"] == 2 and run["config"]["class_balance"] == "downsample"


@pytest.mark.parametrize(("text", "expected"), [
    ("classification: {}\n", "'experiment' must be one of classification, va, multitask"),
    ("experiment: regression\n", "found 'regression'"),
    ("experiment: classification\nsequence: {}\n", "unknown section 'sequence'"),
    ("experiment: classification\nclassification: {stores: x}\n", "unknown field(s) stores"),
    ("experiment: classification\nclassification: {store: /no/such/store}\n", "/no/such/store"),
    ("experiment: classification\nclassification: [1, 2]\n", "must be a mapping"),
    ("experiment: va\nva: {root: /no/such/tree}\n", "/no/such/tree"),
    ("experiment: va\n", "root (an Aff-Wild2-layout tree) is required"),
])
def test_bad_config_is_one_line_naming_the_problem(monkeypatch, capsys, tmp_path, text,
                                                    expected) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    code, _, err = run_cli(monkeypatch, capsys, "run", str(config), "--out", str(tmp_path / "o"))
    assert code == 2
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_missing_config_file_is_named(monkeypatch, capsys, tmp_path) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "run", str(tmp_path / "none.yaml"))
    assert code == 2 and "none.yaml: config file not found" in err


TINY_MULTITASK = """\
experiment: multitask
multitask:
  store: {store}
  seeds: [0, 1]
  val_fraction: 0.25
frame:
  batch_size: 8
  max_steps: 2
  optimizer: adam
  lr: 1.0e-3
  precision: 32-true
  augment: false
  balance: none
"""


SEQUENCE_SECTION = """\
sequence:
  model: gru1
  window: 4
  stride: 2
  batch_size: 8
  max_steps: 2
"""


@pytest.mark.slow
def test_multitask_config_compares_the_three_variants_over_seeds(monkeypatch, capsys,
                                                                 tmp_path) -> None:
    store = write_face_store(tmp_path / "store", frames=15,
                             videos={**{f"s{i}": "train" for i in range(5)}, "v0": "val"})
    config = tmp_path / "multitask.yaml"
    config.write_text(TINY_MULTITASK.format(store=store.path))
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "run", str(config), "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert [(run["variant"], run["seed"]) for run in results["runs"]] == [
        (variant, seed) for variant in ("expression", "va", "combined") for seed in (0, 1)]
    summary = results["summary"]
    assert summary["expression"]["ccc_mean"] is None and summary["va"]["accuracy"] is None
    assert summary["combined"]["accuracy"]["std"] is not None
    assert summary["combined"]["ccc_mean"]["mean"] is not None
    mapping = json.loads((out / "mapping.json").read_text())
    assert set(mapping) == {"0", "1"} and (out / "category_map.png").is_file()
    assert 0 <= mapping["0"]["head_agreement"]["agreement"] <= 1
    assert "| combined | 2 |" in (out / "table.md").read_text() and "combined" in stdout
    models = {json.loads((out / v / "seed_0" / "model" / "run.json").read_text())["config"][
        "model"] for v in ("expression", "va", "combined")}
    assert models == {"cnn_expr7", "cnn_va", "cnn_va_expr7"}
    splits = {json.dumps(json.loads((out / v / "seed_1" / "model" / "run.json").read_text())[
        "data"]["train_frames"]) for v in ("expression", "combined")}
    assert len(splits) == 1   # the same training frames for every variant


@pytest.mark.slow
def test_multitask_action_unit_variant_scores_au_f1(monkeypatch, capsys, tmp_path) -> None:
    units = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
    store = write_face_store(tmp_path / "store", frames=15, action_units=units,
                             videos={**{f"s{i}": "train" for i in range(5)}, "v0": "val"})
    config = tmp_path / "multitask.yaml"
    config.write_text(TINY_MULTITASK.format(store=store.path).replace(
        "seeds: [0, 1]", "seeds: [0]\n  variants: [combined, combined_au]\n"
                         "  sequence_variants: [combined_au]") + SEQUENCE_SECTION)
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "run", str(config), "--out", str(out))
    assert code == 0, err
    runs = {run["variant"]: run for run in json.loads((out / "results.json").read_text())["runs"]}
    assert runs["combined"]["au_f1"] is None and 0 <= runs["combined_au"]["au_f1"] <= 1
    assert runs["combined_au"]["model"] == "cnn_va_expr7_au8"
    sequence = runs["combined_au+sequence"]    # the same three heads, on the same test frames
    assert all(sequence[key] is not None for key in ("accuracy", "ccc_mean", "au_f1"))
    trained = json.loads((out / "combined_au" / "seed_0" / "sequence" / "run.json").read_text())
    assert trained["config"]["heads"] == ["va", "expression", "au"]
    assert trained["data"]["val_frames"] == 15 and trained["data"]["train_frames"] == 4 * 15
    assert "| combined_au+sequence | 1 |" in (out / "table.md").read_text()
    plain = write_face_store(tmp_path / "plain", frames=15)
    config.write_text(TINY_MULTITASK.format(store=plain.path).replace(
        "seeds: [0, 1]", "seeds: [0]\n  variants: [combined_au]"))
    code, _, err = run_cli(monkeypatch, capsys, "run", str(config), "--out", str(tmp_path / "o2"))
    assert code == 2 and "variant combined_au needs action-unit labels" in err
