"""The paper's sequence model: stacked recurrent layers over per-frame CNN features.

One recurrent module per layer because the paper's 3-layer configuration changes width
(100, 100, 50), which a single multi-layer nn.GRU cannot express. Weights start as Keras starts
them (Glorot-uniform input kernels, orthogonal recurrent kernels, zero biases, LSTM forget-gate
bias 1) so that training behaves like the reference. The GRU matches Keras' parameter count exactly
(Keras' default reset_after=True keeps two bias vectors, like PyTorch); PyTorch's SimpleRNN and LSTM
carry one extra bias vector per layer that Keras folds into one, which changes nothing the model can
express.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import torch
from torch import nn

from affecttrack.models.base import SequenceNetwork, State

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class SequenceRNN(SequenceNetwork):
    """(B, T, input_dim) features -> (B, T, outputs): one prediction per time step.

    `heads` name the outputs as the frame CNN's do ({"va": 2} by default; a combined model adds
    "expression" logits and "au" logits): one linear layer computes them all, concatenated in
    that order, and `split_heads` names the parts. Many-to-one use reads the last step; at
    prediction time one pass over a whole run of frames gives every frame's output in O(T).
    """

    def __init__(self, cell: str = "gru", hidden_sizes: Sequence[int] = (100, 100, 50),
                 input_dim: int = 300, heads: Mapping[str, int] | None = None,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        self.head_sizes = dict(heads) if heads is not None else {"va": 2}
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; expected one of {sorted(CELLS)}")
        if not hidden_sizes:
            raise ValueError("SequenceRNN needs at least one layer")
        self.cell = cell
        # Frame features are standardised with the training set's statistics, kept with the
        # weights so that prediction and streaming use exactly what training used.
        self.register_buffer("input_mean", torch.zeros(input_dim))
        self.register_buffer("input_scale", torch.ones(input_dim))
        self.input_dropout = nn.Dropout(input_dropout)
        sizes = [input_dim, *hidden_sizes]
        self.layers = nn.ModuleList(CELLS[cell](n_in, n_out, batch_first=True)
                                    for n_in, n_out in pairwise(sizes))
        self.head = nn.Linear(sizes[-1], sum(self.head_sizes.values()))
        self.reset_parameters()

    def standardize_inputs(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Scale inputs to zero mean, unit variance per feature: the CNN's 300-d features are
        small (|x| ~ 0.1) and unevenly scaled, which leaves a GRU's gates barely moving."""
        self.input_mean.copy_(mean)
        self.input_scale.copy_(std.clamp_min(1e-6))

    def reset_parameters(self) -> None:
        """Keras' initialisers: glorot kernel, orthogonal recurrent kernel, zero (forget 1) bias."""
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight_ih_l0)
            nn.init.orthogonal_(layer.weight_hh_l0)
            nn.init.zeros_(layer.bias_ih_l0)
            nn.init.zeros_(layer.bias_hh_l0)
            if self.cell == "lstm":
                hidden = layer.hidden_size
                with torch.no_grad():
                    layer.bias_ih_l0[hidden:2 * hidden].fill_(1.0)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    def step(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Like forward, carrying each layer's hidden state across calls (streaming video)."""
        state = state if state is not None else [None] * len(self.layers)
        if len(state) != len(self.layers):
            raise ValueError(f"state has {len(state)} layers, the model {len(self.layers)}")
        h = self.input_dropout((x - self.input_mean) / self.input_scale)
        new_state: State = []
        for layer, layer_state in zip(self.layers, state):
            h, layer_state = layer(h, layer_state)
            new_state.append(layer_state)
        return self.head(h), new_state

    def state_names(self) -> list[tuple[str, int]]:
        """h0, h1, ... per layer (h0, c0, h1, c1, ... for an LSTM's (h, c) pairs)."""
        kinds = ("h", "c") if self.cell == "lstm" else ("h",)
        return [(f"{kind}{i}", layer.hidden_size)
                for i, layer in enumerate(self.layers) for kind in kinds]

    def flat_state(self, state: State) -> list[torch.Tensor]:
        """PyTorch's (1, B, hidden) per layer (pairs for an LSTM) as (B, hidden) tensors."""
        tensors = [t for layer in state for t in layer] if self.cell == "lstm" else state
        return [t.squeeze(0) for t in tensors]

    def nested_state(self, flat: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> State:
        layers = [t.unsqueeze(0) for t in flat]
        return list(zip(layers[0::2], layers[1::2])) if self.cell == "lstm" else layers
