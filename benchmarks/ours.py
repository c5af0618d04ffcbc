"""Our side of the benchmark: our models timed the way the Keras reference times its own.

Run by `run_benchmarks.py`, one process per phase (so each phase's peak memory is its own) or all
phases in one process (the whole-run peak comparable to the reference's single process). Prints
one JSON line whose keys match `keras_reference.py`'s where the figure is the same, so both sides
go through one report. Same data shapes, batch sizes, loss (1 - mean CCC), optimiser
(SGD, momentum 0.9) and step counts as the reference; a training step includes the optimiser step,
like Keras' `train_on_batch`.

    python benchmarks/ours.py [--phases cnn_train=bf16-mixed,video=32-true] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import median_call_s, peak_rss_mb, phase_cpu  # noqa: E402

from affecttrack.models.losses import ccc_loss  # noqa: E402
from affecttrack.models.precision import (  # noqa: E402
    autocast_for,
    channels_last_for,
    choose_precision,
)
from affecttrack.models.registry import create_frame_model, create_sequence_model  # noqa: E402

PHASES = ("cnn_train", "cnn_infer", "gru_train", "video")
CPU = torch.device("cpu")
WINDOW = 100
FEATURE_DIM = 300


@dataclass(frozen=True)
class Counts:
    """Untimed warm-up calls and timed calls of one measurement."""

    warmup: int
    repeats: int


# The reference's counts: (quick, full).
COUNTS = {
    "cnn_train": (Counts(1, 3), Counts(3, 30)),
    "cnn_infer_bs256": (Counts(1, 2), Counts(1, 8)),
    "cnn_infer_bs1": (Counts(5, 20), Counts(5, 200)),
    "gru_train": (Counts(1, 3), Counts(2, 15)),
    "video": (Counts(1, 2), Counts(1, 3)),
}


@dataclass(frozen=True)
class Setting:
    """What every phase needs to know: numeric precision, run length, the random source."""

    precision: str
    quick: bool
    video_frames: int
    generator: torch.Generator

    def counts(self, measurement: str) -> Counts:
        return COUNTS[measurement][0 if self.quick else 1]

    def autocast(self) -> Any:
        return autocast_for(self.precision, CPU)

    def images(self, batch: int) -> torch.Tensor:
        """Random grey 96x96 faces in [0, 1], in the memory layout training would use."""
        x = torch.rand(batch, 1, 96, 96, generator=self.generator)
        return x.contiguous(memory_format=self.memory_format)

    def targets(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator) * 2 - 1

    def features(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if channels_last_for(self.precision) else torch.contiguous_format


def train_step_fn(model: nn.Module, output: Callable[[Any], torch.Tensor], x: torch.Tensor,
                  y: torch.Tensor, setting: Setting) -> Callable[[], None]:
    """One optimisation step on a fixed batch: forward under autocast, CCC loss, backward, SGD."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with setting.autocast():
            pred = output(model(x))
        ccc_loss(pred, y).backward()
        optimizer.step()

    return step


def infer_fn(model: nn.Module, x: torch.Tensor, setting: Setting) -> Callable[[], Any]:
    """One prediction without autograd bookkeeping, as feature extraction and prediction run."""
    model.eval()

    def infer() -> Any:
        with torch.inference_mode(), setting.autocast():
            return model(x)

    return infer


def frame_model(setting: Setting) -> nn.Module:
    return create_frame_model("cnn_va").to(memory_format=setting.memory_format)


def cnn_train(setting: Setting) -> dict[str, Any]:
    batch, counts = 128, setting.counts("cnn_train")
    step = train_step_fn(frame_model(setting), lambda out: out["va"], setting.images(batch),
                         setting.targets(batch, 2), setting)
    median = median_call_s(step, counts.warmup, counts.repeats)
    return {"cnn_train_bs": batch, "cnn_train_steps": counts.repeats,
            "cnn_train_step_median_s": round(median, 4)}


def cnn_infer(setting: Setting) -> dict[str, Any]:
    model = frame_model(setting)
    counts = setting.counts("cnn_infer_bs256")
    batch_s = median_call_s(infer_fn(model, setting.images(256), setting), counts.warmup,
                            counts.repeats)
    counts = setting.counts("cnn_infer_bs1")
    single_s = median_call_s(infer_fn(model, setting.images(1), setting), counts.warmup,
                             counts.repeats)
    return {"cnn_infer_bs256_batch_median_s": round(batch_s, 4),
            "cnn_infer_bs1_latency_median_ms": round(1000 * single_s, 3)}


def gru_train(setting: Setting) -> dict[str, Any]:
    """Many-to-one, as the reference trains: the loss sees the last step of each window."""
    batch, counts = 256, setting.counts("gru_train")
    step = train_step_fn(create_sequence_model("gru3"), lambda out: out[:, -1],
                         setting.features(batch, WINDOW, FEATURE_DIM), setting.targets(batch, 2),
                         setting)
    median = median_call_s(step, counts.warmup, counts.repeats)
    return {"gru_train_bs": batch, "gru_train_steps": counts.repeats,
            "gru_train_step_median_s": round(median, 4)}


def video(setting: Setting) -> dict[str, Any]:
    """A whole video's features in one many-to-many pass (the reference runs a window per frame).

    The check that step WINDOW-1 of the pass equals a lone first window's output shows the pass
    computes what the sliding windows compute for that frame.
    """
    frames = min(setting.video_frames, 600) if setting.quick else setting.video_frames
    model = create_sequence_model("gru3")
    feats = setting.features(1, frames, FEATURE_DIM)
    counts = setting.counts("video")
    pass_s = median_call_s(infer_fn(model, feats, setting), counts.warmup, counts.repeats)
    whole = infer_fn(model, feats, setting)()
    first = infer_fn(model, feats[:, :WINDOW], setting)()
    diff = (whole[0, WINDOW - 1] - first[0, -1]).abs().max().item()
    return {"video_frames": frames, "m2m_full_seq_s": round(pass_s, 4),
            "m2m_vs_window0_maxabsdiff": diff}


RUNNERS = {"cnn_train": cnn_train, "cnn_infer": cnn_infer, "gru_train": gru_train, "video": video}


def run(plan: list[tuple[str, str]], base: Setting, wait_idle_s: float) -> dict[str, Any]:
    """Every (phase, precision)'s figures, its CPU accounting, and the process's peak memory."""
    cpu_log: dict[str, dict[str, float]] = {}
    result: dict[str, Any] = {"rss_after_import_mb": round(peak_rss_mb(), 1), "precisions": {}}
    for name, precision in plan:
        result["precisions"][name] = precision
        with phase_cpu(cpu_log, name, wait_idle_s):
            result.update(RUNNERS[name](replace(base, precision=precision)))
    result.update(peak_rss_mb=round(peak_rss_mb(), 1), phase_cpu=cpu_log,
                  max_other_cores=max(v["other_cores"] for v in cpu_log.values()))
    return result


def parse_plan(spec: str) -> list[tuple[str, str]]:
    """"cnn_train=bf16-mixed,video" -> [(phase, resolved precision)]; no precision = auto."""
    plan = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        phase, _, precision = item.partition("=")
        if phase not in PHASES:
            raise SystemExit(f"--phases: unknown phase {phase!r}; choose from {', '.join(PHASES)}")
        plan.append((phase, choose_precision(precision or "auto")))
    if not plan:
        raise SystemExit("--phases: no phase given")
    return plan


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default=",".join(PHASES),
                        help="comma-separated PHASE[=PRECISION], run in this order in one process; "
                             f"phases {', '.join(PHASES)}; precision auto (default), bf16-mixed "
                             "or 32-true")
    parser.add_argument("--quick", action="store_true", help="the reference's short step counts")
    parser.add_argument("--video-frames", type=int, default=3000)
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="before each phase wait up to N s for other processes to go quiet")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    plan = parse_plan(args.phases)
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    base = Setting("32-true", args.quick, args.video_frames,
                   torch.Generator().manual_seed(args.seed))
    header = {"threads": threads, "torch_version": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "quick": args.quick}
    print(json.dumps({**header, **run(plan, base, args.wait_idle)}), flush=True)


if __name__ == "__main__":
    main()
