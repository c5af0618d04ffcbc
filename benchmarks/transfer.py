"""Fine-tuning a pretrained frame model vs training from scratch on about 1,000 real faces.

    .venv/bin/python benchmarks/transfer.py --store stores/eitw_aligned \\
        --split runs/eitw_default/folds/fold_01/split.json \\
        --init runs/eitw_default/folds/fold_01/model/frame_model.pt --out runs/transfer

The pretrained model learnt from the `train` people of SPLIT (the default model's stage 1 learnt
from those of configs/default_expression_model.yaml). Its other people, never trained on, form
a smaller dataset: their faces are copied into OUT/store (a face store of those people only),
where `affecttrack run` holds out HOLDOUT of the people for testing and trains twice on the rest
(about 1,000 faces at the default 0.55), with configs/eitw_finetune_recommended.yaml's recipe
and budget (--steps): once from scratch, once from INIT (`frame.init_from`). Both runs see the
same people, faces, batches and test set; only the starting weights differ. INIT as it is, not
fine-tuned, is scored on the same test faces too: what fine-tuning adds to it. Prints the three
test accuracies and macro-F1s and writes them to OUT/results.json with the commit and the machine.
Each run is resumable: run the same command again after an interruption.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from affecttrack.data.store import FACES_FILE, INDEX_FILE, SUMMARY_FILE, FaceStore
from affecttrack.evaluation.classification import classification_metrics
from affecttrack.pipeline.classification import expression_probabilities
from affecttrack.runinfo import package_versions, source_commit, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import copy_as_model_file, faces_of
from run_benchmarks import machine

RECIPE = ROOT / "configs/eitw_finetune_recommended.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="face store INIT's run used")
    parser.add_argument("--split", type=Path, required=True,
                        help="split.json of INIT's run: its train people are left out here")
    parser.add_argument("--init", type=Path, required=True, help="pretrained model or bundle")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--holdout", type=float, default=0.55, help="share of people tested")
    parser.add_argument("--steps", type=int, default=100, help="training steps of each run")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def unseen_people_store(store: FaceStore, split: Path, out: Path) -> FaceStore:
    """A face store of the people outside `split`'s training part, sharing `store`'s faces
    file (a hard link, or a copy across file systems)."""
    if (out / SUMMARY_FILE).is_file():
        return FaceStore.open(out)
    trained = set(json.loads(split.read_text())["train"])
    index = store.index[~store.index["subject"].isin(trained)]
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / FACES_FILE).hardlink_to(store.path / FACES_FILE)
    except OSError:
        np.save(out / FACES_FILE, np.asarray(store.faces))
    index.to_parquet(out / INDEX_FILE)
    summary = {**store.summary, "subset_of": str(store.path),
               "people_left_out": f"the train people of {split}"}
    write_json_atomic(out / SUMMARY_FILE, summary)
    return FaceStore.open(out)


def train(store: Path, out: Path, args: argparse.Namespace, init: Path | None) -> dict:
    """One `affecttrack run` of the recipe on `store`; its metrics.json."""
    settings = {"classification.store": store, "classification.holdout_fraction": args.holdout,
                "classification.seed": args.seed, "frame.seed": args.seed,
                "frame.max_steps": args.steps, "frame.val_check_interval": args.steps // 5,
                "frame.init_from": init if init is not None else "null"}
    command = [sys.executable, "-m", "affecttrack", "run", str(RECIPE), "--out", str(out)]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    subprocess.run(command, check=True)
    return json.loads((out / "metrics.json").read_text())


def as_it_is(store: FaceStore, init: Path, run: Path) -> dict:
    """INIT, not fine-tuned, scored on the test faces of `run` (a finished run on `store`)."""
    test = faces_of(store, run / "folds" / "fold_01" / "split.json", "test")
    model = run.parent / "pretrained_model.pt"
    copy_as_model_file(init, model)
    probabilities = expression_probabilities(store, model, test["row"].to_numpy())
    return classification_metrics(test["expression"].to_numpy(), probabilities.argmax(axis=1),
                                  store.expression_names)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    store = unseen_people_store(FaceStore.open(args.store), args.split, args.out / "store")
    results = {name: train(store.path, args.out / name, args, init)["folds"]["fold_01"]
               for name, init in (("scratch", None), ("fine_tuned", args.init))}
    results["pretrained_as_is"] = as_it_is(store, args.init, args.out / "fine_tuned")
    print("\n| start | test faces | accuracy | macro-F1 |\n|---|---|---|---|")
    for name, fold in results.items():
        print(f"| {name} | {fold['n']} | {100 * fold['accuracy']:.1f}% "
              f"| {fold['macro_f1']:.3f} |")
    write_json_atomic(args.out / "results.json", {
        "command": " ".join(sys.argv), "commit": source_commit(), "machine": machine(),
        "packages": package_versions(), "store_faces": len(store.index),
        "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
