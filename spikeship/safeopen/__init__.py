"""One safe-open policy for every file spikeship reads (HDF5, ONNX, JSON, data files).

A file handed to spikeship may come from anyone, so before anything is read:

- only a **regular file** is accepted where a file is expected (a symlink is followed,
  but to a regular file only: ``/dev/zero``, a FIFO or a directory is refused);
- its **size** is checked against the limit of its kind (:data:`LIMITS`, below) before a
  byte is read, and at most that many bytes are ever read (a file growing meanwhile
  does not get past it);
- **HDF5** (``model.nir``, ``model.net``): every object must be reachable by hard links
  inside the file: no external links, no soft or user-defined links, no virtual
  datasets, no external raw storage (``Dataset.external``), and only the filters HDF5
  and h5py build in (deflate, shuffle, Fletcher-32, LZF): anything else would load a
  plugin from ``HDF5_PLUGIN_PATH``, i.e. run code. Every dataset's declared size is
  checked against the limit of one array and against the bytes it really stores
  (unfiltered: all of them; filtered: at most :attr:`FileLimits.max_compression_ratio`
  times as many), so nothing is allocated for bytes that are not there;
- **ONNX**: never any external data (an initializer, sparse initializer or attribute
  tensor whose bytes live in another file is a :class:`GraphError`, whatever the path),
  and, for simulation and energy, only the operator set spikeship itself writes
  (:data:`ONNX_OPS`, default domain): control flow (``Loop``, ``If``, ``Scan``),
  custom domains and anything else is refused by name.

The limits (bytes) and their reasons:

=====================  ========  ==========================================================
``json_bytes``         64 MiB    config.json, summary.json, meta.json, energy.json, ...
``text_bytes``         256 MiB   metrics.jsonl (one line per epoch), comparison tables
``hdf5_bytes``         4 GiB     model.nir / model.net of the largest model in the zoo is < 100 MiB
``onnx_bytes``         2 GiB     protobuf's own hard limit for one message
``data_bytes``         8 GiB     one dataset file (CIFAR-10 batches 30 MiB, MNIST 47 MiB)
``checkpoint_bytes``   8 GiB     tensors.safetensors (VGG16 with AdamW state ~ 0.5 GiB)
``array_bytes``        2 GiB     one array declared in an HDF5 file
=====================  ========  ==========================================================
"""

from spikeship.safeopen.arrays import check_npy, check_npz, load_npy
from spikeship.safeopen.files import (LIMITS, FileLimits, GiB, KiB, MiB, check_alloc, check_file,
                                      read_bytes, read_config, read_json, read_text)
from spikeship.safeopen.hdf5 import check_hdf5, open_hdf5
from spikeship.safeopen.onnx_files import ONNX_OPS, check_coordinates, check_onnx, load_onnx

__all__ = ["FileLimits", "GiB", "KiB", "LIMITS", "MiB", "ONNX_OPS", "check_alloc",
           "check_coordinates", "check_file", "check_hdf5", "check_npy", "check_npz",
           "check_onnx", "load_npy", "load_onnx", "open_hdf5", "read_bytes", "read_config",
           "read_json", "read_text"]
