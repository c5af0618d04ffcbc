"""Calibrated expression probabilities by temperature scaling (Guo et al., 2017).

A network trained with cross-entropy on a small dataset ends up over-confident: the probability
it gives its top class runs ahead of how often that class is right. Temperature scaling divides
the expression logits by one scalar T > 0, fitted on held-out faces to minimise their negative
log-likelihood; argmax, and so accuracy, is unchanged.

Dividing the logits by T is dividing the expression head's weight and bias by T (the head is a
linear layer, `models/base.py`), so a calibrated model is the same network with a rescaled head:
no new file format, and prediction, bundles and ONNX export all give calibrated probabilities
without knowing about it. The model file's meta records what was done (`calibration`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from affecttrack.errors import AffectTrackError, InputError
from affecttrack.features.head_outputs import frame_head_outputs
from affecttrack.models.registry import load_model_file, save_model_file

if TYPE_CHECKING:
    from affecttrack.data.store import FaceStore

CALIBRATION_BINS = 15
# A validation set the model classifies perfectly has its likelihood rise without end as T falls
# to 0 (and one it gets all wrong as T grows): the fitted T is kept within these bounds.
TEMPERATURE_RANGE = (0.05, 20.0)
# Probabilities are clipped here before their log: float32 softmax underflows to 0 for a class
# far behind, and one log(0) would make the likelihood infinite whatever T is.
TINY = float(np.finfo(np.float32).tiny)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The T in `TEMPERATURE_RANGE` that minimises the mean negative log-likelihood of
    softmax(logits / T) at `targets` ((n,) class indices). `logits` may be log-probabilities
    (log-softmax outputs): they differ from the logits by one constant per row, which softmax
    ignores. Searched over log T, which keeps T positive and the problem well scaled."""
    z = torch.tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.tensor(np.asarray(targets), dtype=torch.int64)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    # The likelihood is unimodal in log T, so clipping the unbounded optimum is the bounded one.
    return float(np.clip(log_t.exp().item(), *TEMPERATURE_RANGE))


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray,
                               bins: int = CALIBRATION_BINS) -> float:
    """ECE: the mean gap between confidence and accuracy over `bins` equal-width confidence
    bins, weighted by the faces in each (torchmetrics, L1 norm)."""
    p = torch.tensor(np.asarray(probabilities), dtype=torch.float32)
    return float(multiclass_calibration_error(p, torch.tensor(np.asarray(targets)),
                                              num_classes=p.shape[1], n_bins=bins, norm="l1"))


def negative_log_likelihood(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Mean -log p(true class), the score temperature scaling minimises."""
    p = np.asarray(probabilities, dtype=np.float64)
    chosen = p[np.arange(len(p)), np.asarray(targets, dtype=np.int64)]
    return float(-np.log(np.clip(chosen, TINY, None)).mean())


def calibrate_frame_model(model_path: Path, store: FaceStore, rows: np.ndarray,
                          targets: np.ndarray) -> dict[str, Any]:
    """Fit T on the faces at `rows` of `store` with classes `targets` (-1, no class, is left
    out), rewrite the model file with its expression head divided by T and record in its meta
    `calibration`: temperature, faces, ece_before/after, nll_before/after (returned too).

    A file already calibrated is left as it is and its recorded figures returned: dividing by a
    second T fitted on the same faces would be a no-op at best, and a resumed run must not
    rescale twice."""
    model_path = Path(model_path)
    network, info = load_model_file(model_path, "frame")
    if "calibration" in info["meta"]:
        return info["meta"]["calibration"]
    if "expression" not in network.heads:
        raise InputError(model_path, "has no expression head to calibrate (heads: "
                                     f"{', '.join(network.heads)})")
    targets = np.asarray(targets, dtype=np.int64)
    labelled = targets >= 0
    if not labelled.any():
        raise AffectTrackError(f"{store.path}: no faces with an expression class to calibrate "
                               f"{model_path} on")
    rows, targets = np.asarray(rows)[labelled], targets[labelled]
    before = frame_head_outputs(store, model_path, rows)["expression"]
    logits = np.log(np.clip(before, TINY, None))
    temperature = fit_temperature(logits, targets)
    after = torch.softmax(torch.from_numpy(logits / temperature), dim=-1).numpy()
    record = {"temperature": temperature, "faces": len(rows),
              "ece_before": expected_calibration_error(before, targets),
              "ece_after": expected_calibration_error(after, targets),
              "nll_before": negative_log_likelihood(before, targets),
              "nll_after": negative_log_likelihood(after, targets)}
    head = network.heads["expression"]
    with torch.no_grad():
        head.weight.div_(temperature)
        if head.bias is not None:
            head.bias.div_(temperature)
    save_model_file(model_path, network, kind="frame", name=info["name"],
                    overrides=info["overrides"], meta={**info["meta"], "calibration": record})
    return record


def describe_calibration(record: dict[str, Any]) -> str:
    """The one console line a training run prints about its calibration."""
    return (f"calibration: temperature {record['temperature']:.2f} on {record['faces']} "
            f"validation faces; ECE {record['ece_before']:.3f} -> {record['ece_after']:.3f}")
