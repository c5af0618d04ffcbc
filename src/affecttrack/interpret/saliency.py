"""Which pixels of a face drive one output of the frame CNN: Integrated Gradients and Grad-CAM.

The two views answer different questions, so both are given:

- Integrated Gradients (Sundararajan et al., 2017) attributes the change of the output between a
  baseline image and the face to the pixels, and the attributions add up to that change
  (completeness), so a map says how much each pixel contributed. The default baseline is a flat
  image at the face's own mean grey: it removes the face's structure but not its brightness, so
  the map is not dominated by overall lighting (which a black baseline attributes to every pixel).
- Grad-CAM (Selvaraju et al., 2017) on the last convolution: 18 x 18 cells, so it shows regions,
  not pixels, but it is smooth and class-discriminative.

Both come from captum. A `Target` names the output explained: an expression class or valence /
arousal of a "va" head. Models are expected in eval mode (as `load_bundle` returns them), so that
dropout does not make the maps random.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from torch import nn
from torch.nn import functional as F

from affecttrack.errors import AffectTrackError
from affecttrack.labels import canonical_expression
from affecttrack.models.cnn import faces_to_input, head_probabilities

VA_NAMES: tuple[str, ...] = ("valence", "arousal")
BASELINES: tuple[str, ...] = ("mean", "black")
_GEOMETRY_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
# Images per forward/backward pass inside Integrated Gradients: bounds memory (the first
# convolution's output alone is 2.4 MB an image) whatever n_steps and the number of faces.
_INTERNAL_BATCH = 32


@dataclass(frozen=True)
class Target:
    """One output of the frame network: `head` ("expression" or "va"), `index` in it, `name`."""

    head: str
    index: int
    name: str


def head_outputs(model: nn.Module, faces: np.ndarray) -> dict[str, np.ndarray]:
    """Every head on (n, 96, 96) uint8 faces, as `head_probabilities` reads them."""
    with torch.no_grad():
        outputs = head_probabilities(model(faces_to_input(faces)))
    return {head: value.numpy() for head, value in outputs.items()}


def class_target(index: int, labels: Sequence[str] | None) -> Target:
    """The expression class `index`, named by `labels` where there are some."""
    return Target("expression", int(index), labels[index] if labels else f"class {index}")


def choose_target(target: str | None, head_sizes: dict[str, int], labels: Sequence[str] | None,
                  predicted: int | None = None) -> Target:
    """The output a user names: "valence" / "arousal", an expression class by name (any common
    spelling) or number; None means the predicted class (`predicted`), or valence for a model
    without an expression head."""
    if target is None:
        if "expression" in head_sizes and predicted is not None:
            return class_target(predicted, labels)
        target = "valence"
    wanted = target.strip().lower()
    if wanted in VA_NAMES:
        if "va" not in head_sizes:
            raise AffectTrackError(f"target {target!r}: the model has no valence/arousal head "
                                   f"(heads: {', '.join(head_sizes)})")
        return Target("va", VA_NAMES.index(wanted), wanted)
    size = head_sizes.get("expression")
    if size is None:
        raise AffectTrackError(f"target {target!r}: the model has no expression head; "
                               "use valence or arousal")
    names = list(labels) if labels else [f"class {i}" for i in range(size)]
    if wanted.isdigit() and int(wanted) < size:
        return class_target(int(wanted), labels)
    keys = [canonical_expression(name) or name.lower() for name in names]
    key = canonical_expression(wanted) or wanted
    if key not in keys:
        raise AffectTrackError(f"unknown target {target!r}; expected one of "
                               f"{', '.join(names)}, or 0-{size - 1}"
                               + (", valence, arousal" if "va" in head_sizes else ""))
    return class_target(keys.index(key), labels)


def integrated_gradients(model: nn.Module, faces: np.ndarray,
                         targets: Target | Sequence[Target], *, baseline: str = "mean",
                         n_steps: int = 32) -> np.ndarray:
    """(n, 96, 96) float32 signed attributions of each face's target output, in output units
    per pixel: they sum to output(face) - output(baseline), up to the integration error."""
    x = faces_to_input(faces)
    head, indices = _head_and_indices(targets, len(x))
    attributions = IntegratedGradients(_head_function(model, head)).attribute(
        x, baselines=baseline_images(x, baseline), target=indices, n_steps=n_steps,
        internal_batch_size=_INTERNAL_BATCH)
    return attributions[:, 0].detach().numpy()


def output_change(model: nn.Module, faces: np.ndarray, targets: Target | Sequence[Target],
                  baseline: str = "mean") -> np.ndarray:
    """(n,) target output of each face minus that of its baseline image: what its Integrated
    Gradients add up to, so their sum shows whether `n_steps` was enough."""
    x = faces_to_input(faces)
    head, indices = _head_and_indices(targets, len(x))
    rows = torch.arange(len(x))
    with torch.no_grad():
        outputs = [model(images)[head][rows, indices]
                   for images in (x, baseline_images(x, baseline))]
    return (outputs[0] - outputs[1]).numpy()


def baseline_images(x: torch.Tensor, baseline: str) -> torch.Tensor:
    """The reference images of (n, 1, h, w) inputs: flat at each face's mean grey, or black."""
    if baseline == "mean":
        return x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x).contiguous()
    if baseline == "black":
        return torch.zeros_like(x)
    raise AffectTrackError(f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}")


def grad_cam(model: nn.Module, faces: np.ndarray, targets: Target | Sequence[Target], *,
             layer: nn.Module | None = None) -> np.ndarray:
    """(n, 96, 96) float32 non-negative Grad-CAM maps of the last convolution (or `layer`)."""
    layer = layer if layer is not None else last_conv(model)
    x = faces_to_input(faces)
    head, indices = _head_and_indices(targets, len(x))
    cells = LayerGradCam(_head_function(model, head), layer).attribute(
        x, target=indices, relu_attributions=True)
    return _on_pixels(cells.detach(), *cell_geometry(model, layer), x.shape[-1])[:, 0].numpy()


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first convolution (its filters read the pixels directly)."""
    return _convs(model)[0]


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The model's last convolution: the finest spatial map that still sees whole facial parts."""
    return _convs(model)[-1]


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    convs = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise AffectTrackError(f"{type(model).__name__} has no convolution to explain")
    return convs


def cell_geometry(model: nn.Module, layer: nn.Module) -> tuple[float, int]:
    """(first, step): cell i of `layer`'s output is centred on input pixel first + step * i.

    Composed from the kernel, stride and padding of every convolution and pooling up to `layer`
    (in registration order, as a Sequential runs them). The paper's CNN gives (13.5, 4): its
    'valid' convolutions trim the borders, so the 18 cells span pixels 12-83, not 0-95.
    """
    first, step = 0.0, 1
    for module in model.modules():
        if isinstance(module, _GEOMETRY_LAYERS):
            kernel, stride, padding = (_first(getattr(module, name))
                                       for name in ("kernel_size", "stride", "padding"))
            if padding == "same":
                padding = (kernel - 1) // 2
            first += step * ((kernel - 1) / 2 - (0 if padding == "valid" else padding))
            step *= stride
        if module is layer:
            return first, step
    raise AffectTrackError(f"layer {layer} is not part of {type(model).__name__}")


def _first(value: int | str | tuple[int, ...]) -> int | str:
    return value[0] if isinstance(value, tuple) else value


def _on_pixels(cells: torch.Tensor, first: float, step: int, size: int) -> torch.Tensor:
    """Cell maps (n, 1, c, c) upsampled onto the (size, size) input so that every cell lies over
    the pixels it is centred on (a plain stretch to 96 x 96 would shift border cells by up to
    10 pixels); pixels no cell is centred on get 0."""
    start = round(first - (step - 1) / 2)
    side = cells.shape[-1] * step
    upsampled = LayerAttribution.interpolate(cells, (side, side), interpolate_mode="bilinear")
    end = size - start - side  # negative crops
    return F.pad(upsampled, (start, end, start, end))


def _head_function(model: nn.Module, head: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model(x)[head]


def _head_and_indices(targets: Target | Sequence[Target], count: int) -> tuple[str, list[int]]:
    """One head for the whole batch and each face's output index in it."""
    targets = [targets] * count if isinstance(targets, Target) else list(targets)
    if len(targets) != count:
        raise AffectTrackError(f"{len(targets)} targets for {count} faces")
    heads = {target.head for target in targets}
    if len(heads) != 1:
        raise AffectTrackError(f"one batch must explain one head, got {sorted(heads)}")
    return heads.pop(), [target.index for target in targets]
