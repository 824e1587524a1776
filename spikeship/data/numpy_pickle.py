"""A restricted unpickler for pickles of plain numpy arrays (Python 2 era, protocol <= 2).

Pickle runs whatever callables its ``GLOBAL`` opcodes name, so an untrusted pickle is
code. :class:`NumpyArrayUnpickler` resolves exactly three globals, the ones a numpy
array pickle names, and none of them to the real numpy callable:

- ``numpy.core.multiarray._reconstruct`` (numpy 2 calls that module ``numpy._core.
  multiarray``; both spellings name the same function) -> a stand-in that accepts only
  ``_reconstruct(numpy.ndarray, (0,), b"b")`` and returns an empty placeholder;
- ``numpy.ndarray`` -> a marker object (not callable: ``ndarray(shape)`` would allocate);
- ``numpy.dtype`` -> a stand-in accepting only plain numeric type codes
  (``"f4"``, ``"i8"``, ``"u1"``, ...; no object, string or structured dtypes).

Anything else (``os.system``, ``builtins.eval``, ``numpy.zeros``, ...) is refused at its
``GLOBAL`` opcode, before it is imported or called. The array data arrives with the
``BUILD`` opcode as ``(version, shape, dtype, is_fortran, raw_bytes)``: the bytes the
shape and dtype declare, ``prod(shape) * itemsize`` (Python integers, no overflow), are
checked against the bytes present *before* any array is allocated, and only then is
the array made (``numpy.frombuffer`` on those bytes, copied to native byte order).

Every failure is a :class:`~spikeship.errors.DatasetError` naming the source.
"""

from __future__ import annotations

import io
import math
import pickle

import numpy as np

from spikeship.errors import DatasetError

__all__ = ["NumpyArrayUnpickler", "load_numpy_pickle", "ALLOWED_GLOBALS"]

ALLOWED_GLOBALS = frozenset({("numpy.core.multiarray", "_reconstruct"),
                             ("numpy._core.multiarray", "_reconstruct"),
                             ("numpy", "ndarray"), ("numpy", "dtype")})
# numeric dtype codes an array here may have (numpy's pickle writes e.g. "f4", "i8")
DTYPE_CODES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8",
                         "f2", "f4", "f8"})
MAX_NDIM = 32


class _NdarrayMarker:
    """What ``numpy.ndarray`` resolves to: only a tag for ``_reconstruct``'s first argument."""

    def __repr__(self) -> str:
        return "<numpy.ndarray (restricted)>"


NDARRAY = _NdarrayMarker()


class _PendingDtype:
    """``numpy.dtype(code, align, copy)`` before its ``BUILD`` (byte order) arrives."""

    __slots__ = ("code", "order")

    def __init__(self, code: str):
        self.code, self.order = code, "="

    def __setstate__(self, state):
        # numpy writes (3, byteorder, subarray, names, fields, elsize, alignment, flags)
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
                and state[1] in ("<", ">", "|", "=") and state[2:5] == (None, None, None)
                and state[5:7] == (-1, -1)):
            raise pickle.UnpicklingError(f"dtype state {state!r:.80} is not a plain numeric dtype")
        self.order = state[1]

    def dtype(self) -> np.dtype:
        dt = np.dtype(self.code)
        return dt if self.order in ("|", "=") or dt.itemsize == 1 else dt.newbyteorder(self.order)


def _dtype(code, align=0, copy=1):  # noqa: ARG001 - numpy's signature
    if not isinstance(code, str) or code not in DTYPE_CODES:
        raise pickle.UnpicklingError(f"dtype {code!r:.40} is not allowed (plain numeric only)")
    return _PendingDtype(code)


class _PendingArray:
    """``_reconstruct(ndarray, (0,), b"b")`` before its ``BUILD`` (shape, dtype, data)."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("array state must be (version, shape, dtype, "
                                         "is_fortran, data)")
        version, shape, dtype, fortran, data = state
        if version != 1 or not isinstance(fortran, bool) or not isinstance(dtype, _PendingDtype):
            raise pickle.UnpicklingError("array state is not a plain numpy array")
        if not (isinstance(shape, tuple) and len(shape) <= MAX_NDIM and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise pickle.UnpicklingError(f"array shape {shape!r:.80} is not a tuple of sizes")
        if isinstance(data, str):  # a Python 2 str read with encoding="latin1"
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)):
            raise pickle.UnpicklingError("array data must be bytes")
        dt = dtype.dtype()
        want = math.prod(shape) * dt.itemsize
        if want != len(data):
            raise pickle.UnpicklingError(f"array declares shape {shape} of {dt} = {want} bytes, "
                                         f"the pickle holds {len(data)}")
        arr = np.frombuffer(data, dt).reshape(shape, order="F" if fortran else "C")
        self.array = np.ascontiguousarray(arr, dtype=dt.newbyteorder("="))


def _reconstruct(subtype, shape, code):
    if subtype is not NDARRAY or shape != (0,) or code not in (b"b", "b"):
        raise pickle.UnpicklingError("_reconstruct is allowed only as numpy's array pickle "
                                     "writes it: _reconstruct(ndarray, (0,), b'b')")
    return _PendingArray()


class NumpyArrayUnpickler(pickle.Unpickler):
    """Resolves exactly the three globals of a numpy array pickle (see module docstring)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        if name == "_reconstruct":
            return _reconstruct
        return NDARRAY if name == "ndarray" else _dtype

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def _finish(obj, depth: int = 0):
    """``obj`` with every placeholder array replaced by its numpy array."""
    if depth > 16:
        raise pickle.UnpicklingError("nesting deeper than 16 levels")
    if isinstance(obj, _PendingArray):
        if obj.array is None:
            raise pickle.UnpicklingError("an array has no data (BUILD missing)")
        return obj.array
    if isinstance(obj, (_PendingDtype, _NdarrayMarker)):
        raise pickle.UnpicklingError("a bare dtype/ndarray object is not an array")
    if isinstance(obj, tuple):
        return tuple(_finish(o, depth + 1) for o in obj)
    if isinstance(obj, list):
        return [_finish(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        return {k: _finish(v, depth + 1) for k, v in obj.items()}
    return obj


def load_numpy_pickle(data: bytes, where: str = "pickle"):
    """Unpickle ``data`` (``encoding="latin1"``) allowing numpy arrays, tuples, lists,
    dicts, strings and numbers only; :class:`DatasetError` naming ``where`` otherwise."""
    try:
        obj = NumpyArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
        return _finish(obj)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeError, MemoryError, RecursionError) as e:
        raise DatasetError(f"{where} is not a safe numpy pickle: {e}") from e
