"""Bulk input/output for Lava runs through memory-mapped files (no per-value messages).

Lava 0.10's ``Var.get``/``Var.set`` move an array one value per message through the
runtime service (``lava/magma/core/model/py/model.py``, ``_get_var``: "FIXME: send a
whole vector"): reading a 16x16x16 population's spikes for 40 steps takes 160k
messages, i.e. seconds. These two processes exchange whole chunks through a file
both sides memory-map instead (Lava's children are forked on the same machine;
the mapping is shared, so writes are visible at once):

- :class:`StreamSource`: at step ``k`` (1-based) sends frame ``(k - 1) % steps`` of a
  ``(steps, *shape)`` array. The host rewrites the file between runs.
- :class:`StreamSink`: at step ``k`` stores what it receives (spikes) into frame
  ``(k - 1) % steps`` of a ``(steps, *shape)`` uint8 array the host reads after a run.

They are plain I/O (like Lava's ``io.source/sink.RingBuffer``); neurons and synapses
stay Lava's own models. This lives in its own package because Lava's compiler
imports every module next to a process's module while looking for its models.
"""

from __future__ import annotations

import typing as ty

import numpy as np

from spikeship.sim.lava import compat as lava_compat

lava_compat.install()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402


class StreamSource(AbstractProcess):
    """Sends frame ``(time_step - 1) % steps`` of the memory-mapped file ``path``."""

    def __init__(self, *, shape: ty.Tuple[int, ...], steps: int, path: str, dtype: str,
                 name: ty.Optional[str] = None) -> None:
        super().__init__(shape=tuple(shape), steps=int(steps), path=str(path),
                         dtype=np.dtype(dtype).str, name=name)
        self.s_out = OutPort(shape=tuple(shape))


class StreamSink(AbstractProcess):
    """Stores the received spikes at frame ``(time_step - 1) % steps`` of file ``path``."""

    def __init__(self, *, shape: ty.Tuple[int, ...], steps: int, path: str,
                 name: ty.Optional[str] = None) -> None:
        super().__init__(shape=tuple(shape), steps=int(steps), path=str(path), name=name)
        self.a_in = InPort(shape=tuple(shape))


def _memmap(params: dict, dtype, mode: str) -> np.memmap:
    return np.memmap(params["path"], dtype=np.dtype(dtype), mode=mode,
                     shape=(params["steps"], *params["shape"]))


class _SourceModel(PyLoihiProcessModel):
    s_out = None

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._buf = _memmap(self.proc_params, self.proc_params["dtype"], "r")

    def run_spk(self) -> None:
        self.s_out.send(np.array(self._buf[(self.time_step - 1) % self._buf.shape[0]]))


class _SinkModel(PyLoihiProcessModel):
    a_in = None

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._buf = _memmap(self.proc_params, np.uint8, "r+")

    def run_spk(self) -> None:
        self._buf[(self.time_step - 1) % self._buf.shape[0]] = self.a_in.recv() != 0


@implements(proc=StreamSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyStreamSourceFloat(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=StreamSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStreamSourceFixed(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)


@implements(proc=StreamSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyStreamSinkFloat(_SinkModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=StreamSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStreamSinkFixed(_SinkModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
