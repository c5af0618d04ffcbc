"""ONNX export of a bundle's networks, for runtimes without PyTorch (ONNX Runtime, TensorRT, ...).

OUTDIR/frame.onnx: input `image` (n, 1, 96, 96) float32, a grey face divided by 255 (see the
bundle's preprocessing); outputs `features` (n, 300) and one output per head: `va` (n, 2) valence
and arousal, `expression` (n, classes) logits. n is dynamic.

OUTDIR/sequence.onnx: one stateful step over a chunk of frames. Inputs `features` (b, t, 300) and
each recurrent layer's state (b, hidden): `h0`, `h1`, ... (an LSTM layer has `h<i>` and `c<i>`);
outputs `va` (b, t, 2) and the new states `h0_out`, ... Zeros start a run; feeding the new states
back in with the next chunk continues it, so a video can be processed chunk by chunk in O(T), as
`SequenceStream` does in PyTorch (which also applies the many-to-one shift and the gap policy that
this graph leaves to its caller). b and t are dynamic.

OUTDIR/onnx.json: every input and output with its shape (symbolic sizes as names), the labels,
the preprocessing, the sequence network's training target, and how far ONNX Runtime's outputs were
from PyTorch's on random inputs when the files were written (checked at export: a graph that
disagrees is not written).

Exporter: PyTorch's TorchScript-based one (`dynamo=False`). The torch.export-based default of
torch 2.13 fixed nn.GRU's sequence length at the traced value (ONNX Runtime then failed a Reshape
for any other t), which would defeat chunked streaming; the TorchScript exporter writes ONNX's own
GRU / RNN / LSTM operators, whose sequence length is dynamic, and needs no onnxscript.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from affecttrack import __version__
from affecttrack.errors import AffectTrackError
from affecttrack.inference.bundle import Bundle, load_bundle
from affecttrack.models.base import FrameNetwork, SequenceNetwork
from affecttrack.runinfo import atomic_path, to_jsonable, write_json_atomic

FRAME_FILE = "frame.onnx"
SEQUENCE_FILE = "sequence.onnx"
INFO_FILE = "onnx.json"
OPSET = 17
# ONNX Runtime and PyTorch may differ by float32 rounding, relative to the outputs' size.
TOLERANCE = 1e-4
VA_NAMES = ("valence", "arousal")


def export_onnx(bundle: Bundle | Path, out: Path) -> dict[str, Any]:
    """Write frame.onnx, sequence.onnx (if the bundle has a sequence network) and onnx.json to
    `out`; returns what onnx.json holds."""
    onnx, onnxruntime = require_onnx()
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if bundle.sequence is None:     # a sequence.onnx left from an earlier export would mislead
        (out / SEQUENCE_FILE).unlink(missing_ok=True)
    info: dict[str, Any] = {
        "format": "affecttrack-onnx", "affecttrack_version": __version__, "opset": OPSET,
        "frame": _export_frame(bundle.frame, out / FRAME_FILE, onnx, onnxruntime),
        "sequence": (_export_sequence(bundle.sequence, out / SEQUENCE_FILE, onnx,
                                      onnxruntime) if bundle.sequence is not None else None),
        "sequence_target": bundle.sequence_target,
        "head_labels": {name: list({"va": VA_NAMES, "expression": bundle.labels or (),
                                    "au": bundle.action_units}[name])
                        for name in bundle.frame.head_sizes},
        "preprocessing": bundle.preprocessing,
    }
    write_json_atomic(out / INFO_FILE, info)
    return to_jsonable(info)


def require_onnx() -> tuple[ModuleType, ModuleType]:
    """The onnx and onnxruntime modules, or a one-line error naming the extra that installs them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise AffectTrackError(f"ONNX export needs the optional packages onnx and onnxruntime "
                               f"({exc.name} is missing): pip install 'affecttrack[onnx]'"
                               ) from None
    return onnx, onnxruntime


class FrameGraph(nn.Module):
    """The frame network as exported: image -> (features, one output per head), no dropout."""

    def __init__(self, frame: FrameNetwork) -> None:
        super().__init__()
        self.frame = frame

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z = self.frame.forward_features(image)
        return (z, *self.frame.forward_heads(z).values())


class SequenceStep(nn.Module):
    """The sequence network as exported: (features, flat states) -> (outputs, new flat states).

    States are the network's flat (b, width) tensors (`SequenceNetwork.state_names`), so that an
    ONNX caller needs no knowledge of PyTorch's (layers, b, hidden) layout or LSTM's (h, c) pairs.
    """

    def __init__(self, sequence: SequenceNetwork) -> None:
        super().__init__()
        self.sequence = sequence

    def state_names(self) -> list[tuple[str, int]]:
        """(input name, width) of every flat state, in argument order."""
        return self.sequence.state_names()

    def forward(self, features: torch.Tensor, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, state = self.sequence.step(features, self.sequence.nested_state(flat))
        return (out, *self.sequence.flat_state(state))


def _export_frame(frame: FrameNetwork, path: Path, onnx: ModuleType,
                  onnxruntime: ModuleType) -> dict[str, Any]:
    graph = FrameGraph(frame).eval()
    heads = frame.head_sizes
    outputs = {"features": ["n", frame.num_features],
               **{name: ["n", size] for name, size in heads.items()}}
    size = frame.input_size
    inputs = {"image": ["n", 1, size, size]}
    _write_onnx(graph, (torch.rand(2, 1, size, size),), path, inputs, outputs, onnx)
    image = torch.rand(3, 1, size, size)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = [t.numpy() for t in graph(image)]
    error = _check_agreement(path, session.run(None, {"image": image.numpy()}), expected)
    return {"file": path.name, "inputs": _shapes(inputs), "outputs": _shapes(outputs),
            "max_abs_diff_vs_torch": error}


def _export_sequence(sequence: SequenceNetwork, path: Path, onnx: ModuleType,
                     onnxruntime: ModuleType) -> dict[str, Any]:
    step = SequenceStep(sequence).eval()
    states = step.state_names()
    width = sequence.input_size
    inputs = {"features": ["b", "t", width], **{name: ["b", size] for name, size in states}}
    # A valence/arousal network's output keeps its name; a combined one's columns are its heads,
    # concatenated, whose places onnx.json records.
    output = "va" if sequence.head_sizes == {"va": 2} else "outputs"
    outputs = {output: ["b", "t", sequence.num_outputs],
               **{f"{name}_out": ["b", size] for name, size in states}}
    zeros = [torch.zeros(2, size) for _, size in states]
    _write_onnx(step, (torch.randn(2, 4, width), *zeros), path, inputs, outputs, onnx)
    error = _check_agreement(path, *_two_chunks(step, path, onnxruntime, width))
    places = {head: [sequence.head_slice(head).start, sequence.head_slice(head).stop]
              for head in sequence.head_sizes}
    return {"file": path.name, "inputs": _shapes(inputs), "outputs": _shapes(outputs),
            "heads": places, "state": [name for name, _ in states],
            "max_abs_diff_vs_torch": error}


def _write_onnx(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                inputs: dict[str, list[Any]], outputs: dict[str, list[Any]],
                onnx: ModuleType) -> None:
    """Export under a temporary name with every symbolic size dynamic, check the graph, rename."""
    dynamic = {name: {axis: size for axis, size in enumerate(shape) if isinstance(size, str)}
               for name, shape in {**inputs, **outputs}.items()}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The exporter is chosen knowingly (module docstring), and the tracer's notes on nn.RNN's
        # Python-side shape checks and on batch sizes with variable lengths do not apply here:
        # the initial states are inputs, and export checks the graph at other sizes.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size",
                                category=UserWarning)
        torch.onnx.export(model, args, str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=list(inputs), output_names=list(outputs),
                          dynamic_axes=dynamic)
        onnx.checker.check_model(str(tmp))


def _two_chunks(step: SequenceStep, path: Path, onnxruntime: ModuleType,
                width: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """ONNX Runtime over two chunks, the state carried from the first to the second, and PyTorch
    over the whole sequence in one pass: outputs and final states of each."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 8, width)
    zeros = [torch.zeros(3, size) for _, size in step.state_names()]
    names = [name for name, _ in step.state_names()]
    states, outputs = [t.numpy() for t in zeros], []
    for chunk in (x[:, :5], x[:, 5:]):
        out, *states = session.run(None, {"features": chunk.numpy(), **dict(zip(names, states))})
        outputs.append(out)
    with torch.inference_mode():
        expected = [t.numpy() for t in step(x, *zeros)]
    return [np.concatenate(outputs, axis=1), *states], expected


def _check_agreement(path: Path, got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    """Largest |ONNX Runtime - PyTorch|; the file is removed when it exceeds TOLERANCE."""
    worst = max(float(np.abs(a - b).max()) for a, b in zip(got, expected))
    scale = max(1.0, *(float(np.abs(b).max()) for b in expected))
    if worst > TOLERANCE * scale:
        path.unlink()
        raise AffectTrackError(f"{path}: ONNX Runtime's outputs differ from PyTorch's by {worst:g};"
                               " the export is not usable and was removed")
    return worst


def _shapes(tensors: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [{"name": name, "shape": shape, "dtype": "float32"} for name, shape in tensors.items()]
