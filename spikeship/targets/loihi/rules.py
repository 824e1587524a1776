"""Design rules of the Loihi/Lava target: small named checks raising :class:`RuleError`.

Each rule is a function that raises ``RuleError`` whose message starts with
``[<rule>] <node>:`` and which carries ``.rule`` and ``.node`` attributes, so tests
and users can tell exactly which constraint failed where. The lowering
(:mod:`.lower`) calls the graph rules while it walks the NIR graph;
:func:`check_fixed` re-checks every number of a fixed-point deployment against
Lava's bit widths (:data:`~.deployment.FORMAT`).

Rules:

- ``supported-node``: only Input, Output, Affine, Linear, Conv2d, SumPool2d,
  AvgPool2d, Flatten, LIF, CubaLIF and IF map onto Lava's LIF/Dense/Sparse/Conv.
- ``reset-to-zero``: Lava's LIF resets ``v`` to 0; ``v_reset`` must be 0 (and graph
  metadata ``reset``, if present, must be ``"zero"``).
- ``uniform-time-constant``: Lava's ``du``/``dv`` are per population.
- ``decay-range``: ``0 <= dt/tau <= 1`` (forward Euler with a decay factor in [0, 1]).
- ``threshold-positive``: every ``v_threshold > 0``.
- ``one-synapse-per-path``: between two populations exactly one Affine/Linear/Conv2d
  (pools and flattens around it are folded).
- ``pool-foldable``: a pool has ``kernel == stride``, no padding, is followed by a
  synaptic layer, and tiles the input exactly when that layer pads.
- ``flatten-to-vector``: a Flatten yields a vector consumed by an Affine/Linear.
- ``uniform-delay``: all feed-forward paths into a population have the same number of
  synapses (Lava adds one step per synapse).
- ``self-recurrence-only``: a cycle is a population onto itself (one step delay).
- ``output-is-population``: the Output node reads a neuron population.
- ``conv-channel-uniform``: per-neuron factors folded into a conv kernel must be
  uniform within each output channel.
- ``threshold-resolution`` (fixed): the threshold mantissa must be >= 1.
- ``fixed-range`` (fixed): every integer fits its Lava bit width.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from spikeship.errors import RuleError
from spikeship.nir.categories import INPUT, OUTPUT, POOLS, SYNAPSES, kind as node_kind
from spikeship.targets.loihi.deployment import FORMAT, Deployment

# The NIR neurons Loihi's CUBA compartment runs: the spiking ones with a state
# (categories.SPIKING less Threshold).
NEURONS = ("LIF", "CubaLIF", "IF")
SUPPORTED_NODES = (INPUT, OUTPUT, *SYNAPSES, *POOLS, "Flatten", *NEURONS)


def violation(rule: str, node: str, message: str) -> RuleError:
    """A :class:`RuleError` naming ``rule`` and ``node`` (``.rule``, ``.node``)."""
    err = RuleError(f"[{rule}] {node}: {message}")
    err.rule = rule
    err.node = node
    return err


def supported_node(name: str, node) -> None:
    kind = node_kind(node)
    if kind not in SUPPORTED_NODES:
        raise violation("supported-node", name,
                        f"NIR node type {kind} has no Lava mapping; supported: "
                        f"{', '.join(SUPPORTED_NODES)}")


def reset_to_zero(name: str, v_reset: np.ndarray) -> None:
    if np.any(np.asarray(v_reset) != 0):
        raise violation("reset-to-zero", name,
                        f"v_reset must be 0 (Lava's LIF resets v to 0), got values in "
                        f"[{np.min(v_reset)}, {np.max(v_reset)}]")


def graph_reset_mode(graph_name: str, reset: str | None) -> None:
    if reset is not None and str(reset) != "zero":
        raise violation("reset-to-zero", graph_name,
                        f"graph metadata reset='{reset}': Lava's LIF only resets to zero")


def uniform_time_constant(name: str, field: str, tau: np.ndarray) -> float:
    tau = np.asarray(tau, dtype=np.float64)
    if tau.size == 0 or not np.allclose(tau, tau.flat[0], rtol=1e-6, atol=0):
        raise violation("uniform-time-constant", name,
                        f"{field} varies across neurons ([{tau.min()}, {tau.max()}]); "
                        f"Lava's du/dv are one value per population")
    return float(tau.flat[0])


def decay_range(name: str, field: str, alpha: float) -> None:
    if not (0.0 <= alpha <= 1.0 + 1e-9) or not np.isfinite(alpha):
        raise violation("decay-range", name,
                        f"{field} = dt/tau = {alpha:.6g} is outside [0, 1] (dt larger than tau?)")


def threshold_positive(name: str, v_threshold: np.ndarray) -> None:
    if np.any(~np.isfinite(v_threshold)) or np.any(np.asarray(v_threshold) <= 0):
        raise violation("threshold-positive", name, "every v_threshold must be finite and > 0")


def one_synapse_per_path(target: str, path: Iterable[str], n_synaptic: int) -> None:
    if n_synaptic != 1:
        raise violation("one-synapse-per-path", target,
                        f"path {' -> '.join(path)} has {n_synaptic} synaptic layers "
                        f"(Affine/Linear/Conv2d); exactly one is needed between populations")


def pool_foldable(name: str, kernel, stride, padding, in_hw, next_kind: str,
                  next_padding=(0, 0)) -> None:
    kernel, stride, padding = (tuple(int(v) for v in np.broadcast_to(a, (2,)))
                               for a in (kernel, stride, padding))
    if next_kind not in ("conv", "dense"):
        raise violation("pool-foldable", name,
                        "a pool must be followed by a synaptic layer (it is folded into it)")
    if kernel != stride:
        raise violation("pool-foldable", name, f"kernel {kernel} != stride {stride}")
    if padding != (0, 0):
        raise violation("pool-foldable", name, f"padding {padding} is not supported")
    if any(p > 0 and n % s for p, n, s in zip(next_padding, in_hw, stride)):
        raise violation("pool-foldable", name,
                        f"input {tuple(in_hw)} is not a multiple of the stride {stride} and "
                        f"the next conv pads: the fold would read the cropped border")


def flatten_to_vector(name: str, out_shape, consumer: str) -> None:
    if len(out_shape) != 1 or consumer != "dense":
        raise violation("flatten-to-vector", name,
                        f"Flatten must produce a vector read by an Affine/Linear "
                        f"(got shape {tuple(out_shape)} read by {consumer})")


def uniform_delay(name: str, depths: dict[str, int]) -> None:
    if len(set(depths.values())) > 1:
        raise violation("uniform-delay", name,
                        f"inputs arrive through different numbers of synapses {depths}; "
                        f"Lava delays each synapse by one step, so they would not line up")


def self_recurrence_only(name: str, source: str) -> None:
    raise violation("self-recurrence-only", name,
                    f"cycle through '{source}': only a population onto itself is supported")


def output_is_population(name: str, source_kind: str) -> None:
    if source_kind not in NEURONS:
        raise violation("output-is-population", name,
                        f"the Output node reads a {source_kind}; it must read spiking neurons")


def conv_channel_uniform(name: str, factor: np.ndarray) -> None:
    """``factor`` has the target's (C, H, W) shape; it must be constant over (H, W)."""
    f = np.asarray(factor).reshape(factor.shape[0], -1)
    if not np.allclose(f, f[:, :1], rtol=1e-9, atol=0):
        raise violation("conv-channel-uniform", name,
                        "per-neuron r / w_in / threshold differ inside a channel and cannot "
                        "be folded into the shared conv kernel")


def threshold_resolution(name: str, vth_mant: int) -> None:
    if vth_mant < 1:
        raise violation("threshold-resolution", name,
                        "the threshold is below one weight step (vth mantissa rounds to 0)")


def check_fixed(dep: Deployment) -> None:
    """``fixed-range``: every integer of a fixed deployment fits Lava's bit widths."""
    f = FORMAT
    if dep.precision != "fixed":
        raise violation("fixed-range", "deployment", f"precision is '{dep.precision}'")
    for p in dep.populations:
        if not (0 <= p.du <= 4095 and 0 <= p.dv <= 4095):
            raise violation("fixed-range", p.name, f"du={p.du}, dv={p.dv} outside [0, 4095]")
        if not (1 <= p.vth <= f.vth_max):
            raise violation("fixed-range", p.name, f"vth={p.vth} outside [1, {f.vth_max}]")
        if np.abs(p.bias_mant).max(initial=0) > f.bias_mant_max:
            raise violation("fixed-range", p.name, "bias mantissa outside 13 bits")
        if np.any((p.bias_exp < 0) | (p.bias_exp > 7)):
            raise violation("fixed-range", p.name, "bias exponent outside [0, 7]")
    for s in dep.synapses:
        w = s.weights.data if s.kind == "sparse" else np.asarray(s.weights)
        if w.size and (np.abs(w).max() > 2 * f.weight_mant_max or np.any(w % 2)):
            raise violation("fixed-range", s.name,
                            "weights must be 2*m with |m| <= 127 (8-bit mantissa)")
        if s.kind == "conv" and s.weight_exp != 0:
            raise violation("fixed-range", s.name, "Lava's fixed-point Conv has no weight exponent")
