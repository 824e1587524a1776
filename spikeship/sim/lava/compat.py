"""Make lava-nc 0.10.0 import and run on Python 3.11, without touching site-packages.

Lava 0.10 declares Python < 3.11. On 3.11 exactly one thing breaks at import:
``lava/magma/compiler/var_model.py`` declares dataclass fields whose default is a
``ByteEncoder()`` instance::

    @dataclass
    class CoreEncoder:
        x: ByteEncoder = ByteEncoder()

``ByteEncoder`` is itself a (non-frozen) dataclass, hence unhashable, and Python 3.11
rejects unhashable defaults ("mutable default ... use default_factory").

The fix here is an import hook: a :class:`importlib.abc.MetaPathFinder` that serves
that one module from its original source with the single textual change
``= ByteEncoder()`` -> ``= field(default_factory=ByteEncoder)``. The file on disk is
never modified; every instance still gets its own fresh ``ByteEncoder`` (which is
what the original code meant: on Python < 3.11 all instances *shared* one object).
If a future Lava no longer contains the pattern, the module is loaded unchanged.

The same hook makes Lava's ``mp.set_start_method('fork')`` (in
``lava/magma/runtime/message_infrastructure/multiprocessing.py``) tolerate a
multiprocessing context that was already set (see
:func:`patch_multiprocessing_source`).

The same hook serves ``lava/lib/dl/slayer/__init__.py`` (lava-dl 0.6.0) with its
eager ``from . import object_detection as obd`` made lazy (a module ``__getattr__``):
``object_detection`` imports torchvision, which this project must not install (it
pulls a CUDA torch), and netx needs nothing from it. ``slayer.obd`` still works
where torchvision exists.

And ``lava/proc/conv/utils.py``'s ``output_shape``: Lava's Conv model holds padding,
stride, ... as ``np.int8``; with numpy 2 an input 128 or more pixels wide overflows
(``Python integer 200 out of bounds for int8``, lava-dl's PilotNet); the sizes are
cast to int64 first (:func:`patch_conv_utils_source`).

A second, optional fix covers numpy >= 2.4, which removed ``np.reshape(newshape=)``
used by Lava's ``ReshapePort`` transforms. The project pins numpy < 2.4
(constraints.txt), but :func:`install` also patches the two transform functions
when it detects a numpy without the keyword, so a user with a newer numpy still runs.

Usage: ``install()`` is called by ``spikeship.sim.lava.require("lava...")`` (which
every Lava import in spikeship goes through) before any Lava import; users never call it themselves.
Child processes started by Lava's runtime are forked and inherit the hook.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import functools as ft
import inspect
import sys
from types import ModuleType

import numpy as np

from spikeship import _optional

_VAR_MODEL = "lava.magma.compiler.var_model"
_MP = "lava.magma.runtime.message_infrastructure.multiprocessing"
_SLAYER = "lava.lib.dl.slayer"
_OLD = "= ByteEncoder()"
_NEW = "= field(default_factory=ByteEncoder)"
_IMPORT_OLD = "from dataclasses import dataclass, InitVar"
_IMPORT_NEW = "from dataclasses import dataclass, InitVar, field"


def patch_var_model_source(source: str) -> str:
    """Return var_model.py's source with unhashable dataclass defaults made factories."""
    if _OLD not in source:
        return source
    patched = source.replace(_OLD, _NEW)
    if _IMPORT_OLD in patched:
        patched = patched.replace(_IMPORT_OLD, _IMPORT_NEW, 1)
    else:  # keep working if the import line ever changes
        patched = "from dataclasses import field\n" + patched
    return patched


_SLAYER_OLD = "from . import object_detection as obd\n"
_SLAYER_NEW = (
    "def __getattr__(name):  # patched by spikeship.sim.lava.compat: lazy, needs torchvision\n"
    "    if name in ('obd', 'object_detection'):\n"
    "        import importlib\n"
    "        return importlib.import_module(__name__ + '.object_detection')\n"
    "    raise AttributeError(name)\n"
)


def patch_slayer_init_source(source: str) -> str:
    """Return slayer/__init__.py's source with the torchvision-bound import made lazy."""
    return source.replace(_SLAYER_OLD, _SLAYER_NEW, 1)


_MP_OLD = "    mp.set_start_method('fork')\n"
_MP_NEW = ("    if mp.get_start_method(allow_none=True) != 'fork':  # patched by spikeship\n"
           "        mp.set_start_method('fork', force=True)\n")


def patch_multiprocessing_source(source: str) -> str:
    """Return the module's source with the start-method call made tolerant.

    Lava calls ``mp.set_start_method('fork')`` at import, which raises "context has
    already been set" when anything in the process (a tqdm bar, a multiprocessing
    Lock) touched the default context first. Lava needs 'fork', so set it only
    when it is not already the method, forcing it if another one was chosen.
    """
    return source.replace(_MP_OLD, _MP_NEW, 1)


_CONV_UTILS = "lava.proc.conv.utils"
_CONV_OLD = "    x_out = np.floor(\n"
_CONV_NEW = ("    input_shape, kernel_size, stride, padding, dilation = (  # patched by spikeship\n"
             "        np.asarray(v).astype(np.int64)\n"
             "        for v in (input_shape, kernel_size, stride, padding, dilation))\n"
             "    x_out = np.floor(\n")


def patch_conv_utils_source(source: str) -> str:
    """Return conv/utils.py's source with ``output_shape`` computing in int64.

    Lava's Conv model holds ``padding``, ``stride``, ... as ``np.int8`` variables; with
    numpy 2, ``input_shape[0] + 2 * padding[0]`` then raises OverflowError for an input
    128 or more pixels wide (lava-dl's PilotNet: 200).
    """
    return source.replace(_CONV_OLD, _CONV_NEW, 1)


_PATCHES = {_VAR_MODEL: patch_var_model_source, _SLAYER: patch_slayer_init_source,
            _MP: patch_multiprocessing_source, _CONV_UTILS: patch_conv_utils_source}


class _PatchedSourceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that applies the module's source patch before compiling."""

    def get_code(self, fullname: str):  # noqa: D102 - importlib protocol
        source = self.get_data(self.path).decode("utf-8")
        return compile(_PATCHES[fullname](source), self.path, "exec", dont_inherit=True)


class _LavaPatchFinder(importlib.abc.MetaPathFinder):
    """Finds the patched Lava modules and hands them to the patching loader."""

    def find_spec(self, fullname, path, target=None):  # noqa: D102 - importlib protocol
        if fullname not in _PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        loader = _PatchedSourceLoader(fullname, spec.origin)
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=loader,
            submodule_search_locations=spec.submodule_search_locations,
        )


def _numpy_has_newshape() -> bool:
    return "newshape" in inspect.signature(np.reshape).parameters


def _patch_reshape_ports(ports: ModuleType) -> None:
    """Replace ``np.reshape(newshape=...)`` in ``ReshapePort``'s transforms by ``shape=``."""
    ports.ReshapePort.get_transform_func_fwd = lambda self: ft.partial(np.reshape, shape=self.shape)
    ports.ReshapePort.get_transform_func_bwd = lambda self: ft.partial(
        np.reshape, shape=self.old_shape
    )


def install() -> None:
    """Install the import hook (idempotent) and the numpy >= 2.4 reshape fix if needed."""
    if not any(isinstance(f, _LavaPatchFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LavaPatchFinder())
    if not _numpy_has_newshape():
        _patch_reshape_ports(_optional.require("lava.magma.core.process.ports.ports"))
