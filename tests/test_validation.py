"""Issue 12, case 5: every setting is checked before any work, outputs are strict JSON, model
files are refused in our own words, and an --out that names a file is one line."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import typing
from pathlib import Path

import pytest
import torch
from cli_runner import run_cli
from store_fixtures import write_face_store

from affecttrack.config import SettingError, apply_overrides, check_settings, configure
from affecttrack.errors import InputError
from affecttrack.inference.bundle import load_bundle
from affecttrack.inference.predictor import PredictConfig
from affecttrack.interpret.explain import ExplainConfig
from affecttrack.models.registry import (
    FRAME_MODELS,
    create_frame_model,
    load_model_file,
    save_model_file,
)
from affecttrack.pipeline.classification import ClassificationConfig
from affecttrack.pipeline.experiment import EvaluationConfig
from affecttrack.pipeline.multitask import MultitaskConfig
from affecttrack.pipeline.run import VADataConfig
from affecttrack.runinfo import NON_FINITE_KEY, write_json_atomic
from affecttrack.synth import SynthConfig
from affecttrack.training.frame import FrameTrainConfig
from affecttrack.training.sequence import SequenceTrainConfig
from affecttrack.training.trainer import TrainResult

# Every settings class that `configure` fills from YAML or --set, or the CLI from its options.
CONFIGS = (SynthConfig, FrameTrainConfig, SequenceTrainConfig, EvaluationConfig,
           ClassificationConfig, MultitaskConfig, VADataConfig, PredictConfig, ExplainConfig)
SRC = Path(__file__).parents[1] / "src" / "affecttrack"


def _one_line_error(err: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err


def _strict(text: str) -> object:
    """JSON as a strict reader takes it: NaN, Infinity and -Infinity are errors."""
    def refuse(word: str) -> None:
        raise ValueError(f"not strict JSON: {word}")
    return json.loads(text, parse_constant=refuse)


def _frame(**values: object) -> FrameTrainConfig:
    items = [f"frame.{name}={value}" for name, value in values.items()]
    return configure(FrameTrainConfig(), apply_overrides({}, items)["frame"], section="frame")


# --- settings: types, ranges, choices --------------------------------------------------------

@pytest.mark.parametrize(("item", "message"), [
    ("batch_size=-8", "frame.batch_size: -8 is not allowed; expected an integer >= 1"),
    ("batch_size=0", "frame.batch_size: 0 is not allowed; expected an integer >= 1"),
    ("batch_size=huge", "frame.batch_size: 'huge' is not allowed; expected an integer >= 1"),
    ("batch_size=8.0", "frame.batch_size: 8.0 is not allowed"),
    ("max_steps=ten", "frame.max_steps: 'ten' is not allowed; expected an integer >= 1 or -1"),
    ("lr=nan", "frame.lr: 'nan' is not allowed; expected a finite number >= 0"),
    ("lr=.inf", "frame.lr: inf is not allowed; expected a finite number >= 0"),
    ("lr=-1", "frame.lr: -1 is not allowed; expected a finite number >= 0"),
    ("momentum=1e400", "frame.momentum: '1e400' is not allowed"),
    ("augment='no'", "frame.augment: 'no' is not allowed; expected true or false"),
    ("augment=1", "frame.augment: 1 is not allowed; expected true or false"),
    ("optimizer=rmsprop", "frame.optimizer: 'rmsprop' is not allowed; expected one of sgd, "
                          "adam, adamw"),
    ("precision=fp8", "expected one of auto, bf16-mixed, 32-true"),
    ("task=regression", "expected one of va, expression, combined"),
    ("loss=l1", "expected one of ccc, mse"),
    ("balance=subset4", "expected one of none, subset1, subset2, subset3"),
    ("model=resnet", "frame.model: 'resnet' is not allowed; expected one of cnn_va, cnn_expr7"),
    ("val_check_interval=1.5", "a fraction of an epoch in (0, 1]"),
    ("val_max_frames=0", "expected an integer >= 1, or null"),
    ("seed=-1", "frame.seed: -1 is not allowed"),
])
def test_a_bad_frame_setting_is_one_line_naming_field_value_and_what_is_allowed(item, message):
    field, value = item.split("=", 1)
    with pytest.raises(SettingError) as error:
        _frame(**{field: value})
    text = str(error.value)
    assert text.startswith(f"frame.{field}: ") and message in text and "\n" not in text


def test_good_values_are_read_as_declared() -> None:
    config = _frame(lr="1e-3", augment="false", max_time_s=600, val_check_interval=20)
    assert config.lr == 1e-3 and config.augment is False and config.max_time_s == 600.0
    assert isinstance(config.max_time_s, float) and config.val_check_interval == 20
    assert _frame(augment='"true"').augment is True   # the string "true" from a quoted value
    assert _frame(augment="no").augment is False       # YAML 1.1's boolean, not the string


@pytest.mark.parametrize(("section", "default", "item", "message"), [
    ("sequence", SequenceTrainConfig(), "target=last", "one of many_to_many, many_to_one"),
    ("sequence", SequenceTrainConfig(), "model=gru9", "one of rnn1, rnn3, gru1"),
    ("sequence", SequenceTrainConfig(), "heads=[va, pose]", "each item one of va, expression"),
    ("sequence", SequenceTrainConfig(), "input_dropout=1", "a finite number >= 0 and < 1"),
    ("synth", SynthConfig(), "full_frame_size=[641, 360]", "two even integers >= 64"),
    ("synth", SynthConfig(), "layouts=[affectnet]", "each item one of ckplus, ckplus48, jaffe"),
    ("synth", SynthConfig(), "jaffe_subjects=11", "an integer >= 1 and <= 10"),
    ("evaluation", EvaluationConfig(), "split=tset", "one of train, val, test"),
    ("multitask", MultitaskConfig(), "variants=[expr]", "each item one of expression, va"),
    ("multitask", MultitaskConfig(), "seeds=[0, -1]", "each item an integer >= 0"),
    ("multitask", MultitaskConfig(), "root=123", "123 is not allowed; expected a string, or "
                                                 "null"),
    ("classification", ClassificationConfig(), "protocol=loso", "one of holdout, kfold, cross"),
    ("classification", ClassificationConfig(), "folds=1", "an integer >= 2"),
    ("va", VADataConfig(), "root=123", "va.root: 123 is not allowed"),
])
def test_every_section_names_its_bad_settings(section, default, item, message) -> None:
    with pytest.raises(SettingError, match=rf"^{section}\.") as error:
        configure(default, apply_overrides({}, [f"{section}.{item}"])[section], section=section)
    assert message in str(error.value)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda cls: cls.__name__)
def test_every_field_of_every_settings_class_is_checked(cls) -> None:
    """A value of no sensible type is refused for every field, NaN and infinity for every
    number, and a bool or 2.5 for every integer, naming the field."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        members = typing.get_args(hints[field.name]) or (hints[field.name],)
        wrong = [object()]
        if float in members:
            wrong += [math.nan, math.inf]
        if int in members:
            wrong += [True] + ([] if float in members else [2.5])
        for value in wrong:
            with pytest.raises(SettingError) as error:
                cls(**{field.name: value})
            assert error.value.name == field.name, (field.name, value)


def test_settings_built_from_command_line_options_are_checked_too() -> None:
    with pytest.raises(SettingError, match="n_steps: 0 is not allowed"):
        ExplainConfig(n_steps=0)
    with pytest.raises(SettingError, match="detector: 'mtcnn' is not allowed; expected one of"):
        PredictConfig(detector="mtcnn")


def test_model_names_are_the_registrys_own_list(monkeypatch) -> None:
    """Choices are the lists the code uses: a model registered at run time is accepted."""
    with pytest.raises(SettingError):
        FrameTrainConfig(model="cnn_mine")
    monkeypatch.setitem(FRAME_MODELS, "cnn_mine", FRAME_MODELS["cnn_va"])
    assert FrameTrainConfig(model="cnn_mine").model == "cnn_mine"


def test_check_settings_checks_a_plain_dataclass_by_its_types() -> None:
    @dataclasses.dataclass
    class Plain:
        steps: int = 1
        name: str | None = None

    check_settings(Plain())
    with pytest.raises(SettingError, match="steps: '3' is not allowed; expected an integer"):
        check_settings(Plain(steps="3"))  # type: ignore[arg-type]


# --- the command line refuses before any work ------------------------------------------------

def test_demo_refuses_a_bad_setting_before_generating_anything(monkeypatch, capsys,
                                                               tmp_path) -> None:
    out = tmp_path / "demo"
    code, _, err = run_cli(monkeypatch, capsys, "demo", "--out", str(out),
                           "--set", "frame.batch_size=-8")
    assert code == 2 and "frame.batch_size: -8 is not allowed; expected an integer >= 1" in err
    _one_line_error(err)
    assert not out.exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("frame: {max_steps: ten}", "frame.max_steps: 'ten' is not allowed"),
    ("frame: {lr: .nan}", "frame.lr: nan is not allowed; expected a finite number >= 0"),
    ("frame: {lr: .inf}", "frame.lr: inf is not allowed"),
    ("frame: {lr: -1}", "frame.lr: -1 is not allowed"),
    ('frame: {augment: "no"}', "frame.augment: 'no' is not allowed; expected true or false"),
    ("sequence: {batch_size: 0}", "sequence.batch_size: 0 is not allowed"),
    ("evaluation: {smoothing_window: 0}", "evaluation.smoothing_window: 0 is not allowed"),
])
def test_run_refuses_a_bad_setting_before_preparing_the_store(monkeypatch, capsys, tmp_path,
                                                              text, expected) -> None:
    config = tmp_path / "va.yaml"
    config.write_text(f"experiment: va\nva: {{root: {tmp_path / 'tree'}}}\n{text}\n")
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "run", str(config), "--out", str(out))
    assert code == 2 and expected in err
    _one_line_error(err)
    assert not out.exists()


def test_run_refuses_a_root_that_is_not_a_path(monkeypatch, capsys, tmp_path) -> None:
    config = tmp_path / "va.yaml"
    config.write_text("experiment: va\nva: {root: 123}\n")
    code, _, err = run_cli(monkeypatch, capsys, "run", str(config), "--out", str(tmp_path / "o"))
    assert code == 2 and "va.root: 123 is not allowed; expected a string, or null" in err


def test_train_refuses_bad_settings_and_sections_it_does_not_read(monkeypatch, capsys,
                                                                  tmp_path) -> None:
    store = write_face_store(tmp_path / "store", frames=10)
    for args, expected in (
            (["--set", "frame.batch_size=huge"], "frame.batch_size: 'huge' is not allowed"),
            (["--set", "sequence.lr=0.1"], "--set sequence.lr=0.1: this command reads only "
                                           "the section(s) frame")):
        out = tmp_path / "run"
        code, _, err = run_cli(monkeypatch, capsys, "train", "frame", "--store",
                               str(store.path), "--out", str(out), *args)
        assert code == 2 and expected in err
        _one_line_error(err)
        assert not out.exists()


def test_a_malformed_override_value_is_one_line(monkeypatch, capsys, tmp_path) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "demo", "--out", str(tmp_path / "d"),
                           "--set", "frame.lr=[1")
    assert code == 2 and "override 'frame.lr=[1': not a YAML value" in err
    _one_line_error(err)


@pytest.mark.parametrize("command", ["run", "demo", "train frame", "train sequence", "extract",
                                     "predict", "explain", "export", "extend", "evaluate",
                                     "prepare folder", "synth"])
def test_an_out_that_names_a_file_is_one_line(monkeypatch, capsys, tmp_path, command) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me")
    config = tmp_path / "va.yaml"
    config.write_text(f"experiment: va\nva: {{root: {tmp_path}}}\n")
    x = str(tmp_path / "x")
    args = {"run": [str(config)], "demo": [],
            "train frame": ["--store", x], "train sequence": ["--store", x, "--features", x],
            "extract": ["--store", x, "--model", x], "predict": [x], "explain": [x],
            "export": [x], "extend": [x], "evaluate": ["--store", x, "--features", x,
                                                      "--model", x],
            "prepare folder": ["--root", x], "synth": []}[command]
    where = [str(taken)] if command == "synth" else ["--out", str(taken)]
    code, _, err = run_cli(monkeypatch, capsys, *command.split(), *args, *where)
    assert code == 2 and f"{taken}: exists and is not a folder" in err
    _one_line_error(err)
    assert taken.read_text() == "keep me"
    code, _, err = run_cli(monkeypatch, capsys, *command.split(), *args,
                           *([str(taken / "sub")] if command == "synth"
                             else ["--out", str(taken / "sub")]))
    assert code == 2 and f"cannot be made: {taken} is not a folder" in err


def test_options_that_fill_settings_are_checked(monkeypatch, capsys, tmp_path) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "explain", str(tmp_path / "face.png"),
                           "--steps", "0", "--out", str(tmp_path / "e"))
    assert code == 2 and "n_steps: 0 is not allowed; expected an integer >= 1" in err
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--store", str(tmp_path),
                           "--features", str(tmp_path), "--model", str(tmp_path / "m.pt"),
                           "--out", str(tmp_path / "ev"), "--split", "tset")
    assert code == 2 and "split: 'tset' is not allowed; expected one of train, val, test" in err


# --- strict JSON -----------------------------------------------------------------------------

def test_json_outputs_are_strict_and_record_what_was_not_finite(tmp_path) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"ccc": {"valence": float("nan"), "arousal": 0.5},
                             "runs": [{"loss": float("inf")}, {"loss": -math.inf}], "n": 3})
    data = _strict(path.read_text())
    assert data["ccc"] == {"valence": None, "arousal": 0.5} and data["n"] == 3
    assert data["runs"] == [{"loss": None}, {"loss": None}]
    assert data[NON_FINITE_KEY] == {"ccc.valence": "NaN", "runs[0].loss": "Infinity",
                                    "runs[1].loss": "-Infinity"}
    write_json_atomic(path, {"ccc": 0.25})
    assert NON_FINITE_KEY not in _strict(path.read_text())
    write_json_atomic(path, [float("nan"), 1.0])
    assert _strict(path.read_text()) == [None, 1.0]


def test_a_non_finite_training_result_is_written_as_strict_json(tmp_path) -> None:
    """`lr: .inf` once wrote `-Infinity` into done.json."""
    result = TrainResult(tmp_path, tmp_path / "best.ckpt", tmp_path / "m.pt", "val/ccc",
                         float("-inf"), 3, 1, 0.5)
    result.write()
    data = _strict((tmp_path / "done.json").read_text())
    assert data["best_score"] is None
    assert math.isnan(TrainResult.read(tmp_path).best_score)


def test_every_json_file_is_written_through_write_json_atomic() -> None:
    writers = [path.relative_to(SRC) for path in SRC.rglob("*.py")
               if "json.dump(" in path.read_text()]
    assert writers == []


# --- model files: our own reasons, never PyTorch's advice ------------------------------------

class _Code:
    """Unpickling this would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = save_model_file(tmp_path / "good.pt", create_frame_model("cnn_va"), kind="frame",
                           name="cnn_va")
    data = good.read_bytes()
    files = {"code": tmp_path / "code.pt", "truncated": tmp_path / "truncated.pt",
             "empty": tmp_path / "empty.pt", "garbage": tmp_path / "garbage.pt",
             "damaged": tmp_path / "damaged.pt", "pickle": tmp_path / "pickle.pt"}
    torch.save({"format": "affecttrack-model/1", "x": _Code(tmp_path / "code-ran")},
               files["code"])
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(b"hello world" * 10)
    files["pickle"].write_bytes(pickle.dumps({"format": "affecttrack-model/1"}, protocol=4))
    damaged = bytearray(data)
    damaged[100:400] = bytes(b ^ 0xFF for b in damaged[100:400])
    files["damaged"].write_bytes(bytes(damaged))
    return files


@pytest.mark.parametrize("loader", ["model file", "bundle"])
def test_unreadable_model_files_never_suggest_weights_only_false(tmp_path, loader) -> None:
    for kind, path in _bad_files(tmp_path).items():
        with pytest.raises(InputError) as error:
            load_model_file(path, "frame") if loader == "model file" else load_bundle(path)
        message = str(error.value)
        said = message.lower().replace(" ", "_")
        assert "weights_only" not in said and "\n" not in message, (kind, message)
        assert "can still be loaded" not in message, (kind, message)
        assert message.startswith(str(path)), message
        if kind == "code":
            assert "could run code" in message
        elif loader == "model file":
            assert ("could run code" if kind == "pickle" else "truncated or damaged") in message
    assert not (tmp_path / "code-ran").exists()
