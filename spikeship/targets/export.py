"""Checkpoint -> deployable files (``spikeship export RUN_DIR [--formats nir,onnx,netx]``).

Writes ``model.nir``, ``model.onnx`` and the chip formats of the chip registry
(:func:`spikeship.targets.registry.writers`: ``model.net``, Loihi's netx) into the run
directory plus ``export.json`` (the weight shapes before and after unit removal,
synapse counts, and what was written), all or nothing: every file is written under a
temporary name and renamed only when every format succeeded, so a failing export
leaves the files of the previous one untouched and no partial file behind.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from spikeship import ranges
from spikeship.errors import (CheckpointError, ConfigError, ExportError, RunDirError,
                              SpikeshipError)
from spikeship.export.nir_export import to_nir, write_nir
from spikeship.export.onnx_export import IR_VERSION, OPSET, to_onnx, write_onnx
from spikeship.export.surgery import build_deployable, shape_table
from spikeship.io import atomic_path, write_json_atomic
from spikeship.nir.read import read_nir
from spikeship.runlock import RUN_KINDS, own_temp, writes_run_dir
from spikeship.safeopen import load_onnx
from spikeship.targets import registry as chips
from spikeship.targets.loihi.netx_read import read_deployment
from spikeship.train.checkpoint import load_checkpoint

FORMATS = ("nir", "onnx", *chips.writers())      # format-neutral writers, then the chips'
FRAME_DATASETS = ("digits-events", "nmnist", "dvs-gesture")


def encoding_of(config: dict) -> str:
    """``"frames"`` for event datasets, else ``"direct"`` (or the config's ``encoding``)."""
    if config.get("encoding"):
        return str(config["encoding"])
    return "frames" if config.get("dataset") in FRAME_DATASETS else "direct"


@writes_run_dir("run_dir", "export", accepts=RUN_KINDS)
def load_deployable(run_dir: Path, dt_s: float = 1e-3):
    """``run_dir``'s checkpoint, its configuration (``timesteps`` defaulted to 8 and
    checked, ``encoding`` resolved) and the deployable network every format is written
    from. Returns ``(checkpoint, config, net)``."""
    ck = load_checkpoint(run_dir)
    config = dict(ck.config)
    config.setdefault("timesteps", 8)
    ranges.timesteps(config["timesteps"], f"timesteps in the checkpoint's configuration",
                     CheckpointError)
    config["encoding"] = encoding_of(config)
    net = build_deployable(ck.model, ck.masks, ck.spec, config, dt_s=dt_s,
                           source_run=str(Path(run_dir).resolve()))
    return ck, config, net


def export_run(run_dir: str | Path, formats: tuple[str, ...] = ("nir", "onnx"), *,
               dt_s: float = 1e-3, onnx_mode: str = "step", netx_optional: bool = False
               ) -> dict:
    """Export the checkpoint of ``run_dir``; returns the ``export.json`` document.

    ``netx_optional``: a graph netx cannot express (recurrent, ...) is skipped with a
    note instead of failing the whole export (the default format list of the CLI).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"no run directory at {run_dir}")
    dt_s = ranges.dt_s(dt_s)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    ck, config, net = load_deployable(run_dir, dt_s)
    graph = to_nir(net)
    notes = [f"{layer}: {len(silent)} unit(s) without any synapse left, whose bias alone "
             "never reaches the threshold, removed (they never fire)"
             for layer, silent in net.removed_silent.items()]
    onnx_model = None
    if "onnx" in formats:
        onnx_model = to_onnx(net, mode=onnx_mode, timesteps=config["timesteps"])
        notes.append(f"onnx: mode {onnx_mode}, opset {OPSET}, IR version {IR_VERSION}")
    netx_tmp = _netx_first(graph, run_dir, netx_optional, notes) if "netx" in formats else None
    # All or nothing: every file goes to a temporary name first; the renames happen only
    # after every writer succeeded, so a failing format leaves the old files untouched.
    with contextlib.ExitStack() as stack:
        if netx_tmp is not None:     # removed last, whether the export succeeds or not
            stack.callback(shutil.rmtree, netx_tmp.parent, ignore_errors=True)
        written = _write_formats(stack, run_dir, formats, graph, onnx_model, netx_tmp)
        stale = _stale(run_dir, formats, written)
        notes += [f"removed the stale {name} of an earlier export (not written this time)"
                  for name in stale]
        doc = {"source_run": str(run_dir.resolve()), "epoch": ck.epoch, "dt_s": dt_s,
               "timesteps": config["timesteps"], "encoding": config["encoding"],
               "formats": dict(written), "notes": notes, "layers": shape_table(net),
               "neurons": [{"layer": l.name, "before": list(l.original_shape),
                            "after": list(l.shape)} for l in net.neuron_layers()]}
        write_json_atomic(stack.enter_context(atomic_path(run_dir / "export.json")), doc)
    for name in stale:               # after every new file is in place
        (run_dir / name).unlink(missing_ok=True)
    return doc


def _netx_first(graph, run_dir: Path, netx_optional: bool, notes: list[str]) -> Path | None:
    """The netx file, written first into a scratch folder in ``run_dir``: a graph netx
    cannot express is an ExportError before anything is written (skipped with a note
    when netx is optional: then None)."""
    writer = chips.writer("netx")
    netx_tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".netx-")) / "model.net"
    own_temp(netx_tmp.parent)     # journalled: the next writer removes it if this one dies
    try:
        writer(graph, netx_tmp)
    except ExportError as e:
        shutil.rmtree(netx_tmp.parent, ignore_errors=True)
        if not netx_optional:
            raise
        notes.append(f"netx skipped: {e}")
        return None
    except BaseException:
        shutil.rmtree(netx_tmp.parent, ignore_errors=True)
        raise
    return netx_tmp


def _write_formats(stack: contextlib.ExitStack, run_dir: Path, formats: tuple[str, ...],
                   graph, onnx_model, netx_tmp: Path | None) -> dict[str, str]:
    """Each format to a temporary name renamed when ``stack`` closes, read back first;
    returns format -> final path."""
    written, tmps = {}, {}

    def target(key: str, name: str) -> Path:
        written[key] = str(run_dir / name)
        tmps[key] = stack.enter_context(atomic_path(run_dir / name))
        return tmps[key]

    if "nir" in formats or "netx" in formats:
        write_nir(graph, target("nir", "model.nir"))
    if onnx_model is not None:
        write_onnx(onnx_model, target("onnx", "model.onnx"))
    if netx_tmp is not None:
        shutil.copyfile(netx_tmp, target("netx", "model.net"))
    validate_written(tmps)       # read back by the readers the targets use
    return written


def validate_written(tmps: dict[str, Path]) -> None:
    """Read each freshly written file (still under its temporary name) with the reader
    every later stage uses; an ExportError here leaves the previous export untouched."""
    readers = {"nir": read_nir, "onnx": load_onnx, "netx": read_deployment}
    for key, tmp in tmps.items():
        try:
            readers[key](tmp)
        except SpikeshipError as e:
            raise ExportError(f"the {key} file this export wrote does not read back, so the "
                              f"previous one is kept: {e}") from e


def _stale(run_dir: Path, formats: tuple[str, ...], written: dict[str, str]) -> list[str]:
    """Files of requested formats this export skips (netx when the graph does not fit
    it): the old file would describe another checkpoint, so it is removed."""
    return [name for fmt, name in (("netx", "model.net"), ("onnx", "model.onnx"))
            if fmt in formats and fmt not in written and (run_dir / name).exists()]
