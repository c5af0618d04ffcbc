"""Every experiment config shipped in configs/ must load into its settings: a user runs them as
documented in README's "Reproducing the paper", and a renamed field would otherwise surface only
after a dataset had been prepared."""

from __future__ import annotations

from pathlib import Path

import pytest

from affecttrack.pipeline.classification import ClassificationConfig
from affecttrack.pipeline.run import EXPERIMENTS, VARunConfig, load_experiment

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
PAPER_CONFIGS = [path for path in CONFIGS if path.stem.startswith(("ckplus", "affwild2"))
                 and not path.stem.endswith("_recommended")]
RECOMMENDED = {"ckplus_kfold_recommended": "ckplus_8class_kfold",
               "ckplus_to_jaffe_recommended": "ckplus_to_jaffe"}


def test_configs_folder_holds_the_papers_experiments() -> None:
    names = {path.stem for path in CONFIGS}
    assert {"ckplus_8class_holdout", "ckplus_to_jaffe", "affwild2_cnn_all",
            "affwild2_cnn_subset3", "affwild2_cnn_rnn1", "affwild2_cnn_gru1",
            "affwild2_cnn_gru3"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_every_config_loads(path: Path) -> None:
    kind, _ = load_experiment(path)
    assert kind in EXPERIMENTS


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda path: path.stem)
def test_paper_config_loads_with_the_papers_optimiser(path: Path) -> None:
    kind, config = load_experiment(path)
    frame = config.frame if kind == "classification" else config.experiment.frame
    assert (frame.optimizer, frame.lr, frame.momentum) == ("sgd", 0.01, 0.9)
    if kind == "classification":
        assert isinstance(config, ClassificationConfig)
        assert frame.task == "expression"
    else:
        assert isinstance(config, VARunConfig)
        assert config.experiment.sequence.window == 100


@pytest.mark.parametrize("name", RECOMMENDED)
def test_a_recommended_config_keeps_its_paper_configs_data_protocol_and_network(name) -> None:
    """Only the training recipe differs, so the two are compared on the same footing."""
    folder = Path(__file__).parents[1] / "configs"
    _, recommended = load_experiment(folder / f"{name}.yaml")
    _, paper = load_experiment(folder / f"{RECOMMENDED[name]}.yaml")
    same = ("store", "test_store", "protocol", "val_fraction", "seed")
    assert [getattr(recommended, key) for key in same] == [getattr(paper, key) for key in same]
    assert (recommended.frame.model, recommended.frame.task) == (paper.frame.model,
                                                                 paper.frame.task)
    assert recommended.frame.augmentation == "strong" and recommended.frame.schedule == "cosine"
    assert recommended.test_flip and recommended.frame.label_smoothing > 0
    assert recommended.ensemble == (recommended.protocol == "cross")


def test_config_paths_can_be_overridden_on_the_command_line() -> None:
    _, config = load_experiment(Path(__file__).parents[1] / "configs" / "ckplus_to_jaffe.yaml",
                                ["classification.test_store=/data/jaffe_store"])
    assert config.test_store == "/data/jaffe_store"
    assert config.protocol == "cross"


def test_the_multitask_config_compares_three_variants_over_three_seeds() -> None:
    kind, config = load_experiment(Path(__file__).parents[1] / "configs" /
                                   "synthetic_multitask.yaml")
    assert kind == "multitask" and config.seeds == [0, 1, 2]
    assert config.variants == ["expression", "va", "combined", "combined_au"]
