"""What gets deployed on a Loihi-style chip: plain frozen dataclasses, no Lava objects.

A :class:`Deployment` is the single hand-off between the NIR graph and everything
that runs it the Loihi way: the Lava builder (:mod:`spikeship.sim.lava.build`), the netx
writer (:mod:`spikeship.targets.loihi.netx`) and the batched emulator. It is produced by
two pure functions:

- :func:`spikeship.targets.loihi.lower.lower` -> ``precision="float"``: the NIR
  graph in Lava's own units (pools folded, per-neuron factors folded, decays
  computed from ``dt``); what Lava's ``floating_pt`` models run.
- :func:`spikeship.targets.loihi.quantize.quantize` -> ``precision="fixed"``: the
  same with every number as the integer Lava's ``fixed_pt`` models take.

Layout conventions (the same in both precisions):

- Population shapes are NIR shapes (``(C, H, W)`` or ``(N,)``); Lava's shape is the
  reverse (``(W, H, C)``), see :attr:`PopulationSpec.lava_shape`. Per-neuron arrays
  (``bias_mant``, ``bias_exp``, ``v_scale``) are stored in the NIR shape.
- ``dense``/``sparse`` weights are ``(out, in)`` with ``in`` in the NIR C-order
  flattening of the source population (a flatten of a ``(C, H, W)`` source is the
  port transform ``transpose([2, 1, 0]).flatten()`` in Lava).
- ``conv`` weights are in NIR/torch layout ``(C_out, C_in / groups, kH, kW)``,
  cross-correlation as torch computes it; stride/padding/dilation are ``(H, W)``.
  The Lava builder converts to Lava's ``(C_out, kW, kH, C_in)`` flipped kernel.
- A synapse is a Lava connection process; each adds one time step of delay. A
  population's ``depth`` is the number of synapses between the input and it, so
  sample step ``t`` reaches it at Lava step ``t + 1 + depth`` (1-based).

Fixed point (see :mod:`.quantize` for rounding and saturation): ``weights`` hold
the values handed to Lava's ``Dense``/``Sparse``/``Conv`` (``2 * m`` with the 8-bit
mantissa ``m`` in [-127, 127]), ``weight_exp`` the shared exponent (always 0, see
quantize), ``du``/``dv`` the 12-bit decays, ``vth`` the 17-bit threshold mantissa,
``bias_mant``/``bias_exp`` the 13-bit bias mantissa and its exponent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SOURCE_INPUT = "input"      # the network input (a RingBuffer of spikes or payloads)
SOURCE_CONST = "const"      # a unit that is 1 at every step (bias into a CubaLIF current)


@dataclass(frozen=True, eq=False)
class PopulationSpec:
    """One Lava ``LIF`` population (one NIR neuron node).

    Lava's LIF (``lava/proc/lif/models.py``), per step, with ``a_in`` the summed
    synaptic input of this step::

        float:  u = u * (1 - du) + a_in
                v = v * (1 - dv) + u + bias_mant
        fixed:  u = wrap24(sgn(x) * (|x| >> 12) + (a_in << 6)),  x = u * (4096 - (du + 1))
                v = clip24(sgn(y) * (|y| >> 12) + u + (bias_mant << bias_exp)),  y = v * (4096 - dv)
        spike:  v > vth (float) | v > (vth << 6) (fixed);  then v = 0
    """

    name: str                        # NIR neuron node name
    kind: str                        # "LIF" | "CubaLIF" | "IF" (the NIR node type)
    shape: tuple[int, ...]           # NIR shape
    depth: int                       # synapses between the input and this population
    du: float | int
    dv: float | int
    vth: float | int
    bias_mant: np.ndarray            # NIR shape; float (float) or int (fixed)
    bias_exp: np.ndarray             # NIR shape; zeros (float) or exponents (fixed)
    v_scale: np.ndarray              # NIR shape: Lava v = v_scale * NIR v
    state_scale: float = 1.0         # fixed: Lava integer units per Lava float unit (S)

    @property
    def lava_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True, eq=False)
class SynapseSpec:
    """One Lava connection process (``Dense``, ``Sparse`` or ``Conv``).

    ``a_out = W s`` (dense/sparse) or ``a_out = conv(s, W)`` (conv); in fixed point
    ``a_out = (W s) << weight_exp`` (Dense/Sparse; Lava's fixed Conv has no
    exponent). Sent one step later (``a_buff``).
    """

    name: str                        # NIR synaptic node name (Affine/Linear/Conv2d)
    kind: str                        # "dense" | "sparse" | "conv"
    source: str                      # "input", "const" or a population name
    target: str                      # population name
    weights: Any                     # ndarray (dense/conv) or scipy.sparse.csr_matrix (sparse)
    recurrent: bool = False          # source == target (a population onto itself)
    weight_exp: int = 0
    num_message_bits: int = 0        # > 0: graded input (payload multiplies the weight)
    source_shape: tuple[int, ...] = ()   # NIR shape of what the synapse reads
    flatten_source: bool = False     # dense/sparse reading a >= 2-D source (C-order flatten)
    stride: tuple[int, int] = (1, 1)     # conv, (H, W)
    padding: tuple[int, int] = (0, 0)    # conv, (H, W)
    dilation: tuple[int, int] = (1, 1)   # conv, (H, W)
    groups: int = 1                  # conv
    folded: tuple[str, ...] = ()     # NIR pool/flatten nodes folded into this synapse
    pruned: bool = False             # some trained synapses were pruned (mask or zeros)

    def connections(self) -> int:
        """Synapses present in the process (nonzero structure of Sparse; all of Dense;
        kernel entries of Conv, shared over positions)."""
        if self.kind == "sparse":
            return int(self.weights.nnz)
        return int(np.prod(self.weights.shape))


@dataclass(frozen=True, eq=False)
class HostLayerSpec:
    """A synaptic layer evaluated on the host and injected as current (direct encoding).

    ``I[t] = W x[t] + bias`` (dense, ``x`` flattened C-order) or
    ``conv2d(x[t], W) + bias`` (conv), in Lava float units of the target population,
    fed straight into the target's ``a_in`` (no synapse, no delay). In fixed point the
    injected integer is ``a = clip(rint(I * injection_scale), -a_max, a_max)``.
    """

    name: str
    kind: str                        # "dense" | "conv"
    target: str
    weights: Any                     # float64, NIR layout; a pruned dense layer: CSR
    bias: np.ndarray                 # float64, target NIR shape
    source_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    folded: tuple[str, ...] = ()
    injection_scale: float = 1.0     # fixed: integer a_in per Lava float unit (S / 64)
    injection_max: float = float("inf")  # fixed: |a| is clipped to this


@dataclass(frozen=True, eq=False)
class Deployment:
    """A NIR graph as Lava runs it (float or fixed point). See the module docstring."""

    precision: str                   # "float" | "fixed"
    dt_s: float
    input_shape: tuple[int, ...]     # NIR input shape
    input_mode: str                  # "spikes" (RingBuffer -> synapse) | "current" (host layer)
    input_message_bits: int          # spikes mode: 0 = binary, > 0 = graded payload bits
    populations: tuple[PopulationSpec, ...]   # topological order (by depth)
    synapses: tuple[SynapseSpec, ...]
    host_layers: tuple[HostLayerSpec, ...]
    output: str                      # population feeding the NIR Output node
    source_graph: str = ""           # free text: where the graph came from
    report: dict[str, Any] = field(default_factory=dict)   # quantisation report (fixed)
    # NIR population split into Lava populations of equal time constants (see lower):
    # name -> (NIR shape, ((group population, flat C-order member indices), ...))
    groups: dict[str, tuple[tuple[int, ...], tuple[tuple[str, np.ndarray], ...]]] = \
        field(default_factory=dict)

    def output_populations(self) -> list[str]:
        """The Lava populations holding the output (one, or the output's groups)."""
        if self.output in self.groups:
            return [name for name, _ in self.groups[self.output][1]]
        return [self.output]

    def assemble_output(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """``(N, T, classes)`` from the output populations' ``(N, T, n_j)`` spikes."""
        if self.output not in self.groups:
            return parts[self.output]
        shape, members = self.groups[self.output]
        first = next(iter(parts.values()))
        out = np.zeros((*first.shape[:2], int(np.prod(shape))), dtype=first.dtype)
        for name, idx in members:
            out[:, :, idx] = parts[name].reshape(*first.shape[:2], -1)
        return out

    def merge_counts(self, counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-population arrays keyed by NIR population (groups put back in place)."""
        out = {k: v for k, v in counts.items()
               if not any(k in dict(m) for _, m in self.groups.values())}
        for name, (shape, members) in self.groups.items():
            first = counts[members[0][0]]
            full = np.zeros(int(np.prod(shape)), dtype=np.asarray(first).dtype)
            for g, idx in members:
                full[idx] = np.asarray(counts[g]).reshape(-1)
            out[name] = full.reshape(shape)
        return out

    @property
    def depth(self) -> int:
        """Largest population depth: the extra Lava steps needed after the last sample."""
        return max(p.depth for p in self.populations)

    def population(self, name: str) -> PopulationSpec:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    def incoming(self, name: str) -> list[SynapseSpec]:
        return [s for s in self.synapses if s.target == name]

    def summary(self) -> dict[str, Any]:
        """JSON-able description (kinds, sizes, connections) for reports."""
        return {
            "precision": self.precision,
            "dt_s": self.dt_s,
            "input_mode": self.input_mode,
            "input_message_bits": self.input_message_bits,
            "depth": self.depth,
            "populations": {p.name: {"kind": p.kind, "shape": list(p.shape), "depth": p.depth}
                            for p in self.populations},
            "synapses": {s.name: {"kind": s.kind, "source": s.source, "target": s.target,
                                  "connections": s.connections(), "pruned": s.pruned,
                                  "folded": list(s.folded), "recurrent": s.recurrent}
                         for s in self.synapses},
            "host_layers": {h.name: {"kind": h.kind, "target": h.target,
                                     "folded": list(h.folded)} for h in self.host_layers},
            "output": self.output,
        }


@dataclass(frozen=True)
class FixedFormat:
    """Bit widths of Lava's bit-accurate Loihi models (the numbers quantisation targets).

    Sources: ``lava/proc/lif/models.py`` (``AbstractPyLifModelFixed``: u, v 24-bit,
    ``decay_shift = 12``, ``vth_shift = act_shift = 6``, ``ds_offset = 1``;
    ``PyLifModelBitAcc`` docstring: du, dv unsigned 12-bit, bias_mant signed 13-bit,
    vth unsigned 17-bit), ``lava/proc/dense/models.py`` + ``lava/utils/weightutils.py``
    (8-bit weights; mixed sign: the LSB is truncated, i.e. values ``2 * m``).
    """

    weight_mant_max: int = 127       # |m| <= 127 (symmetric 8-bit mantissa), Lava value 2 * m
    decay_bits: int = 12             # du, dv in [0, 4095]; decays act as (4096 - d) / 4096
    vth_max: int = 2 ** 17 - 1       # 17-bit threshold mantissa
    vth_target_max: int = 2 ** 16    # keep (vth << 6) <= 2^22: v has 2x headroom below 2^23
    bias_mant_max: int = 2 ** 12 - 1  # 13-bit signed bias mantissa (symmetric)
    bias_exp: int = 6                # bias = mant << 6 (aligned with vth << 6; netx's fixed value)
    state_bits: int = 24             # u, v
    act_shift: int = 6               # a_in << 6 (and vth << 6)
    injection_max: int = 2 ** 17 - 1  # |a_in| keeping (a_in << 6) inside 24 bits
    injection_vth: int = 2 ** 12     # vth mantissa of a population fed only by host current


FORMAT = FixedFormat()
