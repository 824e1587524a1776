"""Producer conventions: what an exporter means but does not write.

None of the four exporters writes a producer mark, so the user names it:
``convention`` in :data:`CONVENTIONS` (default ``"nir"``: the file means what NIR says).
:func:`apply_convention` changes the graph where the producer's meaning is expressible
in NIR as spikeship runs it (reference equations: :mod:`spikeship.sim.reference`),
refuses by name (:class:`~spikeship.errors.ConventionError`) where no spikeship
simulator can express it, and returns a record of every change for the run's files.
:func:`detect` only warns: it never changes numbers.

Sources (the exporters read; versions pinned in ``tools/producer-requirements.txt``):

- snnTorch 1.0 https://github.com/jeshraghian/snntorch/blob/master/snntorch/export_nir.py :
  taus computed with dt = 1e-4 s, not written; ``r = tau/dt``; ``Synaptic`` -> CubaLIF with
  ``w_in = tau_syn/dt``; ``v_reset = 0`` whatever ``reset_mechanism``. ``Synaptic`` and
  ``RLeaky`` reset the whole state update of the step after a spike (snntorch/_neurons/
  synaptic.py ``_base_zero``, rleaky.py ``_base_zero``): not NIR's reset.
- Norse 1.1 https://github.com/norse/norse/blob/main/norse/torch/utils/export_nir.py :
  ``dt = 1e-3`` (to_nir's default), not written; time constants written as
  ``dt / tau_inv`` (= dt * tau, not tau: the step's decay is dt * tau_inv); ``LIFCell`` -> CubaLIF with ``w_in`` left
  at 1 while ``lif_feed_forward_step`` adds the input to the current unscaled:
  ``i <- i + x`` equals NIR's Euler step ``i <- i + dt/tau_syn (-i + w_in x)`` for
  ``w_in = tau_syn/dt``.
- Sinabs 3.1 https://github.com/synsense/sinabs/blob/develop/sinabs/nir.py : IAF -> IF
  whatever its ``spike_fn``/``reset_fn``; the default IAF is MultiSpike with
  MembraneSubtract (several spikes per step, reset by subtraction).
- Rockpool 3.1 https://github.com/synsense/rockpool/blob/develop/rockpool/nn/modules/torch/nir.py :
  LIFTorch -> CubaLIF, ``dt`` (1e-3 default) not written, ``r = tau exp(-dt/tau)/dt``;
  its neurons decay by ``exp(-dt/tau)`` and emit ``floor(v/threshold)`` spikes per step
  with reset by subtraction (rockpool/nn/modules/torch/lif_torch.py, StepPWL).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import nir
import numpy as np

from spikeship.errors import ConfigError, ConventionError
from spikeship.nir.normalize import Change, normalize

CONVENTIONS = ("nir", "snntorch", "norse", "sinabs", "rockpool")
DEFAULT_DT_S = {"snntorch": 1e-4, "norse": 1e-3, "rockpool": 1e-3}


@dataclass
class ConventionRecord:
    """What a convention did: adapter, producer version if known, each change."""

    convention: str
    producer_version: str | None
    changes: list[Change] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"convention": self.convention, "producer_version": self.producer_version,
                "changes": [c.as_dict() for c in self.changes]}


def _version(convention: str) -> str | None:
    try:
        return None if convention == "nir" else version(convention)
    except PackageNotFoundError:
        return None


def _cycles(graph: nir.NIRGraph) -> set[str]:
    """Nodes that lie on a cycle of the graph."""
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)

    def reach(start):
        seen, stack = set(), list(succ.get(start, []))
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(succ.get(n, []))
        return seen

    return {n for n in graph.nodes if n in reach(n)}


def _refuse(node: str, producer: str, what: str, advice: str = "") -> ConventionError:
    return ConventionError(f"node {node!r}: {producer} means {what}; no spikeship simulator "
                           f"expresses it (convention {producer!r}){advice}")


def _dt(graph: nir.NIRGraph, convention: str, rec: ConventionRecord) -> None:
    meta = graph.metadata if graph.metadata is not None else {}
    if meta.get("dt") is None and convention in DEFAULT_DT_S:
        meta["dt"] = DEFAULT_DT_S[convention]
        graph.metadata = meta
        rec.changes.append(Change("<graph>", "metadata.dt", "None", str(meta["dt"]),
                                  f"{convention}'s exporter assumes this dt and writes none"))


def _snntorch(graph, rec):
    loops = _cycles(graph)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.CubaLIF):
            raise _refuse(name, "snntorch", "Synaptic's reset (the step after a spike sets "
                          "the membrane to 0, or subtracts the threshold by default), "
                          "which NIR's CubaLIF reset does not say")
        if isinstance(node, nir.LIF) and name in loops:
            raise _refuse(name, "snntorch", "RLeaky's reset (the step after a spike sets the "
                          "membrane to 0 including its input), which NIR's LIF reset does not say")


def _norse(graph, rec):
    dt = float(graph.metadata["dt"])
    for name, node in graph.nodes.items():
        for key in ("tau", "tau_mem", "tau_syn"):   # written as dt/tau_inv = dt * tau
            if isinstance(node, (nir.LIF, nir.CubaLIF, nir.LI)) and hasattr(node, key):
                setattr(node, key, np.asarray(getattr(node, key), dtype=np.float64) / dt)
                rec.changes.append(Change(name, key, "dt/tau_inv", "1/tau_inv",
                                          "Norse's to_nir writes dt/tau_inv, not 1/tau_inv"))
        if isinstance(node, nir.CubaLIF):
            w_in = np.broadcast_to(np.asarray(node.w_in, dtype=np.float64),
                                   np.shape(node.tau_syn))
            if not np.all(w_in == 1):
                raise ConventionError(f"node {name!r}: convention 'norse' expects w_in = 1 as "
                                      f"Norse writes it, the file has other values")
            node.w_in = np.asarray(node.tau_syn, dtype=np.float64) / dt
            rec.changes.append(Change(name, "w_in", "1", "tau_syn/dt",
                                      "Norse adds the input to the current unscaled"))


def _sinabs(graph, rec):
    for name, node in graph.nodes.items():
        if isinstance(node, nir.IF):
            raise _refuse(name, "sinabs", "IAF's default MultiSpike with MembraneSubtract "
                          "(several spikes per step, reset by subtraction)",
                          ". An IAF exported with spike_fn=SingleSpike, "
                          "reset_fn=MembraneReset() is NIR's IF: run it as 'nir'")


def _rockpool(graph, rec):
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.CubaLIF, nir.LIF)):
            raise _refuse(name, "rockpool", "LIFTorch's exponential decay exp(-dt/tau) with "
                          "floor(v/threshold) spikes per step and reset by subtraction")


ADAPTERS = {"nir": lambda g, r: None, "snntorch": _snntorch, "norse": _norse,
            "sinabs": _sinabs, "rockpool": _rockpool}


def apply_convention(graph: nir.NIRGraph, convention: str = "nir") -> tuple[nir.NIRGraph,
                                                                           ConventionRecord]:
    """The graph with ``convention``'s meaning applied in place, and the record."""
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown convention {convention!r}; one of {', '.join(CONVENTIONS)}")
    rec = ConventionRecord(convention, _version(convention))
    if convention == "nir":
        for producer, why in detect(graph):
            warnings.warn(f"this graph looks like {producer}'s export ({why}); it is run as "
                          f"plain NIR: pass convention={producer!r} (--convention {producer}) "
                          "to run it with that producer's meaning", stacklevel=2)
        return graph, rec
    _dt(graph, convention, rec)
    ADAPTERS[convention](graph, rec)
    return graph, rec


def _all(node, key, pred) -> bool:
    v = getattr(node, key, None)
    return v is not None and bool(np.all(pred(np.asarray(v, dtype=np.float64))))


def detect(graph: nir.NIRGraph) -> list[tuple[str, str]]:
    """Documented per-producer signatures found in ``graph``: (producer, why) pairs."""
    found, has_dt = [], (graph.metadata or {}).get("dt") is not None
    nodes = graph.nodes.values()
    if not has_dt and any(isinstance(n, nir.CubaLIF) and _all(n, "w_in", lambda w: w == 1)
                          and _all(n, "r", lambda r: r == 1) for n in nodes):
        found.append(("norse", "CubaLIF with w_in = 1, r = 1 and no dt"))
    if not has_dt and any(isinstance(n, (nir.CubaLIF, nir.LIF)) and not _all(n, "r", lambda r: r == 1)
                          and np.allclose(np.asarray(n.r, dtype=np.float64), _rp_r(n), rtol=1e-5)
                          for n in nodes):
        found.append(("rockpool", "r = tau exp(-dt/tau)/dt with dt = 1e-3 and no dt"))
    if not has_dt and any(isinstance(n, nir.IF) and _all(n, "r", lambda r: r == 1) for n in nodes):
        found.append(("sinabs", "IF with r = 1 and no dt (Sinabs' default IAF is multi-spike)"))
    if not has_dt and any(isinstance(n, nir.CubaLIF) and np.allclose(
            np.asarray(n.w_in, dtype=np.float64), np.asarray(n.tau_syn) / 1e-4, rtol=1e-5)
            for n in nodes):
        found.append(("snntorch", "CubaLIF with w_in = tau_syn/1e-4 and no dt"))
    return found


def _rp_r(node) -> np.ndarray:
    tau = np.asarray(getattr(node, "tau_mem", getattr(node, "tau", None)), dtype=np.float64)
    dt = DEFAULT_DT_S["rockpool"]
    return tau * np.exp(-dt / tau) / dt


def prepare(graph: nir.NIRGraph, convention: str = "nir") -> tuple[nir.NIRGraph, dict]:
    """Normalise (:func:`spikeship.nir.normalize.normalize`), then apply ``convention``;
    the record of both, for the run's files."""
    graph, changes = normalize(graph)
    graph, rec = apply_convention(graph, convention)
    return graph, {"normalized": [c.as_dict() for c in changes], **rec.as_dict(),
                   "detected": [{"producer": p, "why": w} for p, w in detect(graph)]
                   if convention == "nir" else []}
