"""Temperature scaling of a trained expression model: calibration error before and after.

    .venv/bin/python benchmarks/calibration.py --run runs/eitw_default
    .venv/bin/python benchmarks/calibration.py --run runs/eitw_default \\
        --model src/affecttrack/models/default/expressions.bundle.pt

RUN is a hold-out run of `affecttrack run` (one fold): it names the face store and which people
were validation and test. MODEL (default: the run's own model; a model file or a bundle of a
network trained on the run's training people) is written to OUT (default:
frame_model_calibrated.pt in the run's model folder, where `affecttrack bundle` finds the run's
run.json and so its store's face crops) and calibrated there on the validation people
(`training.calibration`, the step `frame.calibrate: true` runs). The expected calibration error
(15 bins) and the negative log-likelihood are printed for the validation faces and for the test
faces, before and after; the test faces play no part in fitting the temperature, so their
figures say whether calibration carries over to new people. Classes and accuracy do not change.
Writes the figures to OUT with the suffix .json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from affecttrack.data.store import FaceStore
from affecttrack.models.registry import save_model_file
from affecttrack.models.transfer import read_weight_source
from affecttrack.pipeline.classification import (
    expression_frames,
    expression_probabilities,
)
from affecttrack.runinfo import source_commit, write_json_atomic
from affecttrack.training.calibration import (
    calibrate_frame_model,
    expected_calibration_error,
    negative_log_likelihood,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a hold-out classification run")
    parser.add_argument("--model", type=Path, help="model file or bundle (default: the run's)")
    parser.add_argument("--out", type=Path, help="the calibrated model file")
    return parser.parse_args(argv)


def copy_as_model_file(source: Path, out: Path) -> None:
    """`source`'s frame network (model file or bundle) as a plain model file naming its classes."""
    weights = read_weight_source(source)
    save_model_file(out, weights.network, kind="frame", name=weights.name,
                    overrides=weights.overrides,
                    meta={"expressions": list(weights.classes.get("expression", ()))})


def faces_of(store: FaceStore, split: Path, part: str) -> pd.DataFrame:
    """The labelled faces of `store` whose people `split` (a run's split.json) puts in `part`."""
    frames = expression_frames(store)
    return frames[frames["subject"].isin(json.loads(split.read_text())[part])]


def figures(model: Path, store: FaceStore, faces: pd.DataFrame) -> dict[str, float]:
    """ECE and NLL of `model`'s expression probabilities on `faces` (index rows)."""
    probabilities = expression_probabilities(store, model, faces["row"].to_numpy())
    classes = faces["expression"].to_numpy(np.int64)
    return {"faces": len(faces), "ece": expected_calibration_error(probabilities, classes),
            "nll": negative_log_likelihood(probabilities, classes)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fold = args.run / "folds" / "fold_01"
    split = fold / "split.json"
    store = FaceStore.open(Path(json.loads(split.read_text())["store"]))
    val, test = (faces_of(store, split, part) for part in ("val", "test"))
    out = args.out or fold / "model" / "frame_model_calibrated.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    copy_as_model_file(args.model or fold / "model" / "frame_model.pt", out)
    test_before = figures(out, store, test)
    record = calibrate_frame_model(out, store, val["row"].to_numpy(),
                                   val["expression"].to_numpy())
    test_after = figures(out, store, test)
    print(f"temperature {record['temperature']:.3f}, fitted on {record['faces']} validation faces")
    print("\n| faces | n | ECE before | ECE after | NLL before | NLL after |\n|---|---|---|---|---|---|")
    rows = (("validation (fitted on)", record["faces"], record["ece_before"], record["ece_after"],
             record["nll_before"], record["nll_after"]),
            ("test (new people)", test_before["faces"], test_before["ece"], test_after["ece"],
             test_before["nll"], test_after["nll"]))
    for name, n, *values in rows:
        print(f"| {name} | {n} | " + " | ".join(f"{value:.3f}" for value in values) + " |")
    write_json_atomic(out.with_suffix(".json"), {
        "command": " ".join(sys.argv), "commit": source_commit(), "run": str(args.run),
        "model": str(args.model or "the run's"), "temperature": record["temperature"],
        "validation": record, "test": {"before": test_before, "after": test_after}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
