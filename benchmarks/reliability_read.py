"""Hostile inputs of issue 36, classes 2-4 (reading, values, named errors): tried / good / bad.

Each case writes its files into a fresh directory (a small dpap-mnist run on digits,
trained for one epoch and exported once, is copied where a case needs a run; a tiny
standalone NIR graph otherwise), runs the command through ``spikeship.cli.main`` and
records the exit code and the first line of stderr. A case is *good* when it ends as
expected: a named error (exit code of a :mod:`spikeship.errors` class, one line
``spikeship: error: ...``, never 70 = internal error or 130 = aborted), or exit 0 where
the input is valid (``expect="ok"``). The FIFO case runs in a subprocess with a timeout
(a read would block). The process's address space is capped (current + 4 GiB), so a
reader that allocates what a file declares fails instead of filling the machine.

Writes ``reliability-read.json`` (results schema; ``--results``: into ``results/``): every
case (class, name, exit code, message, good) and per class tried / good / bad.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import nir
import numpy as np

CASES: list[tuple[int, str, str, Callable[[Path, Path], list]]] = []


def case(cls: int, name: str, expect: str = "error"):
    def register(fn):
        CASES.append((cls, name, expect, fn))
        return fn
    return register


# ---- fixtures --------------------------------------------------------------------------
def tiny_graph(dt=1e-3, lif_name="lif") -> nir.NIRGraph:
    w = np.full((4, 3), 0.5)
    lif = nir.LIF(tau=np.full(4, 2e-3), r=np.ones(4), v_leak=np.zeros(4),
                  v_threshold=np.full(4, 0.3), v_reset=np.zeros(4))
    nodes = {"in": nir.Input(input_type={"input": np.array([3])}),
             "fc": nir.Affine(weight=w, bias=np.zeros(4)), lif_name: lif,
             "out": nir.Output(output_type={"output": np.array([4])})}
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", lif_name), (lif_name, "out")],
                        metadata={"dt": dt})


def standalone(d: Path, *extra, x=None, graph=None) -> list:
    """``simulate net.nir --input x.npy`` in ``d`` (files written here)."""
    nir.write(d / "net.nir", graph or tiny_graph())
    if not (d / "x.npy").exists():
        np.save(d / "x.npy", (np.random.default_rng(0).random((5, 3, 3)) < 0.5) * 1.0)
    return ["simulate", d / "net.nir", "--target", "reference", "--input", x or d / "x.npy",
            "--out", d / "out", *extra]


def npy_declaring(path: Path, shape, dtype="<f8") -> Path:
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (64 - (10 + len(header) + 1) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
                     + b"\0" * 64)
    return path


def copy_run(base: Path, d: Path) -> Path:
    run = d / "run"
    shutil.copytree(base, run)
    return run


def edit_netx(run: Path, fn) -> Path:
    with h5py.File(run / "model.net", "r+") as f:
        fn(f)
    return run / "model.net"


def _replace(g, key, value):
    del g[key]
    g[key] = value


def conv_group(f):
    return next(f["layer"][k] for k in sorted(f["layer"], key=int) if "stride" in f["layer"][k])


def dense_group(f):
    return next(f["layer"][k] for k in sorted(f["layer"], key=int)
                if "weight" in f["layer"][k] and f["layer"][k]["weight"].ndim == 2)


def edit_coordinates(run: Path, how: str) -> None:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(run / "model.onnx")
    inits = {t.name: t for t in m.graph.initializer}
    base = next(n[: -len(".values")] for n in inits if n.endswith(".weight.values"))
    idx = numpy_helper.to_array(inits[f"{base}.indices"]).copy()
    shape = numpy_helper.to_array(inits[f"{base}.shape"]).copy()
    if how == "dup":
        idx[1] = idx[0]
    elif how == "range":
        idx[1, 0] = shape[0] + 7
    else:
        shape[:] = 10**7
    for name, a in ((f"{base}.indices", idx), (f"{base}.shape", shape)):
        inits[name].CopyFrom(numpy_helper.from_array(a, name))
    onnx.save(m, run / "model.onnx")


def edit_json(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


def edit_metrics(run: Path, layer: dict) -> None:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r["layers"][0].update(layer)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


# ---- class 2: sizes and file kinds -------------------------------------------------------
@case(2, "input .npy header declaring 10^6 x 10^4 x 3 float64")
def _(d, base):
    return standalone(d, x=npy_declaring(d / "h.npy", (10**6, 10**4, 3)))


@case(2, "labels .npy header declaring 10^12 int64")
def _(d, base):
    return standalone(d, "--labels", npy_declaring(d / "y.npy", (10**12,), "<i8"))


@case(2, "0-byte --input")
def _(d, base):
    (d / "e.npy").write_bytes(b"")
    return standalone(d, x=d / "e.npy")


@case(2, "--input a symlink to the zero device")
def _(d, base):
    (d / "z.npy").symlink_to("/dev/zero")
    return standalone(d, x=d / "z.npy")


@case(2, "--input a directory")
def _(d, base):
    (d / "dir.npy").mkdir()
    return standalone(d, x=d / "dir.npy")


@case(2, "--input a FIFO nobody writes (subprocess, 60 s timeout)")
def _(d, base):
    os.mkfifo(d / "fifo.npy")
    return ["SUBPROCESS", *standalone(d, x=d / "fifo.npy")]


@case(2, "--timesteps 10^7 for a static input")
def _(d, base):
    np.save(d / "s.npy", np.ones((10, 3)))
    return standalone(d, "--timesteps", 10**7, x=d / "s.npy")


@case(2, "--timesteps 10^4 expanding 10^5 static samples past one array")
def _(d, base):
    np.save(d / "s.npy", np.ones((100_000, 3), np.uint8))
    return standalone(d, "--timesteps", 10_000, x=d / "s.npy")


for _cmd in ("inspect", "simulate", "energy"):
    for _how, _cls, _what in (("huge", 2, "coordinate shape 10^7 x ..."),
                              ("range", 2, "coordinate index out of range"),
                              ("dup", 3, "coordinate listed twice")):
        def _make(d, base, cmd=_cmd, how=_how):
            from spikeship import cli

            run = copy_run(base, d)
            if cmd == "energy":
                with contextlib.redirect_stderr(io.StringIO()), \
                        contextlib.redirect_stdout(io.StringIO()):
                    cli.main(["simulate", str(run), "--target", "reference", "--samples", "2"])
            edit_coordinates(run, how)
            return {"inspect": ["inspect", run / "model.onnx"],
                    "simulate": ["simulate", run, "--target", "onnx", "--samples", 2],
                    "energy": ["energy", run, "--spikes-from", "reference",
                               "--no-lava-check"]}[cmd]
        case(_cls, f"ONNX {_what}: {_cmd}")(_make)


@case(2, "netx shape attribute 10^18 neurons: lava-netx")
def _(d, base):
    run = copy_run(base, d)
    edit_netx(run, lambda f: _replace(conv_group(f), "shape", np.array([10**6] * 3)))
    return ["simulate", run, "--target", "lava-netx", "--samples", 2]


@case(2, "netx shape attribute 10^18 neurons: import")
def _(d, base):
    run = copy_run(base, d)
    net = edit_netx(run, lambda f: _replace(conv_group(f), "shape", np.array([10**6] * 3)))
    return ["import", net, "--out", d / "o.nir"]


@case(2, "--nproc 64")
def _(d, base):
    return ["train", "--out", d / "o", "--nproc", 64, "--batch-size", 128]


# ---- class 3: values checked for meaning -------------------------------------------------
for _dt in ("1e300", "1e-300", "inf", "0", "-1"):
    case(3, f"--dt {_dt}")(lambda d, base, dt=_dt: standalone(d, "--dt", dt))
for _dt in (1e300, 1e-300):
    case(3, f"NIR metadata dt = {_dt:g}")(
        lambda d, base, dt=_dt: standalone(d, graph=tiny_graph(dt=dt)))
case(3, "--option dt_s=1e300 (reference)")(
    lambda d, base: standalone(d, "--option", "dt_s=1e300"))
for _name, _y in (("uint64 2^64-1", np.full(5, 2**64 - 1, np.uint64)),
                  ("-1", np.array([-1, 0, 0, 0, 0])), ("10^12", np.array([10**12, 0, 0, 0, 0])),
                  ("= classes", np.full(5, 4)), ("float", np.zeros(5))):
    def _labels(d, base, y=_y):
        np.save(d / "y.npy", y)
        return standalone(d, "--labels", d / "y.npy")
    case(3, f"labels {_name}")(_labels)
for _name, _x in (("uint64 2^64-1", np.full((5, 3, 3), 2**64 - 1, np.uint64)),
                  ("1e308", np.full((5, 3, 3), 1e308)), ("NaN", np.full((5, 3, 3), np.nan)),
                  ("float32 -1e30", np.full((5, 3, 3), -1e30, np.float32))):
    def _inputs(d, base, x=_x):
        np.save(d / "bad.npy", x)
        return standalone(d, x=d / "bad.npy")
    case(3, f"inputs {_name}")(_inputs)
case(3, "--prune-opt layers=99:0.5 (l1-filter)")(
    lambda d, base: ["train", "--out", d / "o", "--model", "tiny-mlp", "--prune", "l1-filter",
                     "--prune-opt", "layers=99:0.5", "--epochs", 1, "--limit-train", 20,
                     "--no-progress"])
for _name, _fn in (
        ("infinite weight", lambda g: _replace(g, "weight", np.where(
            np.arange(g["weight"].size).reshape(g["weight"].shape) == 0, np.inf,
            g["weight"][()].astype(float)))),
        ("stride 0", lambda g: _replace(g, "stride", np.array([0, 0]))),
        ("dilation 0", lambda g: _replace(g, "dilation", np.array([0, 0]))),
        ("padding -3", lambda g: _replace(g, "padding", np.array([-3, -3]))),
        ("groups 10^9", lambda g: _replace(g, "groups", np.int64(10**9))),
        ("groups 0", lambda g: _replace(g, "groups", np.int64(0)))):
    def _netx(d, base, fn=_fn):
        run = copy_run(base, d)
        return ["import", edit_netx(run, lambda f: fn(conv_group(f))), "--out", d / "o.nir"]
    case(3, f"import netx conv {_name}")(_netx)


# ---- class 4: named errors instead of exit 70 --------------------------------------------
for _name, _text in (("int", '{"pipeline": 5}'), ("list", '{"pipeline": [1, 2]}'),
                     ("string", '"hello"'), ("nested 10^5", "[" * 10**5 + "]" * 10**5)):
    def _pipe(d, base, text=_text):
        (d / "p.json").write_text(text)
        return ["pipeline", "--config", d / "p.json", "--out", d / "o"]
    case(4, f"pipeline JSON config: {_name}")(_pipe)


@case(4, "train TOML config nested 10^5 deep")
def _(d, base):
    (d / "c.toml").write_text("a = " + "[" * 10**5 + "]" * 10**5 + "\n")
    return ["train", "--config", d / "c.toml", "--out", d / "o"]


@case(4, "--prune-opt value nested 6 x 10^4 deep")
def _(d, base):
    return ["train", "--out", d / "o", "--prune", "dpap", "--prune-opt",
            "preset=" + "[" * 60_000 + "]" * 60_000]


@case(4, "NIR neuron node name of 100,000 characters: simulate")
def _(d, base):
    return standalone(d, graph=tiny_graph(lif_name="n" * 100_000))


@case(4, "NIR neuron node name of 100,000 characters: energy")
def _(d, base):
    return ["energy", *standalone(d, graph=tiny_graph(lif_name="n" * 100_000))[1:2],
            "--input", d / "x.npy", "--out", d / "out"]


@case(4, "'$' in the pruner name: report", expect="ok")
def _(d, base):
    run = copy_run(base, d)
    edit_json(run / "summary.json", lambda s: s.update(pruner="dp$\\frac$ap"))
    return ["report", run]


for _cmd in ("report", "compare"):
    for _name, _edit in (
            ("units_total 10^9", lambda r: edit_metrics(r, {"units_total": 10**9})),
            ("string accuracy", lambda r: edit_json(r / "summary.json",
                                                   lambda s: s.update(test_accuracy="0.9"))),
            ("layer name of 100,000 characters", lambda r: edit_metrics(r, {"name": "n" * 10**5}))):
        def _rc(d, base, cmd=_cmd, edit=_edit):
            run = copy_run(base, d)
            edit(run)
            if cmd == "report":
                return ["report", run]
            return ["compare", base, run, "--out", d / "cmp.md"]
        case(4, f"{_name}: {_cmd}")(_rc)


@case(4, "netx dense weight 5 columns short: lava-netx")
def _(d, base):
    run = copy_run(base, d)

    def cut(f):
        g = dense_group(f)
        _replace(g, "weight", g["weight"][()][:, :-5])
    edit_netx(run, cut)
    return ["simulate", run, "--target", "lava-netx", "--samples", 2]


for _field, _value in (("beta", 1.5), ("threshold", -0.5)):
    for _cmd in ("export", "resume"):
        def _ck(d, base, field=_field, value=_value, cmd=_cmd):
            run = copy_run(base, d)
            edit_json(run / "checkpoint" / "meta.json",
                      lambda m: m["spec"]["neuron"].update({field: value}))
            return ["export", run] if cmd == "export" else \
                ["train", "--out", run, "--resume", "--no-progress"]
        case(4, f"checkpoint {_field} = {_value}: {_cmd}")(_ck)


@case(4, "--option device=cuda without CUDA (loihi-emu)")
def _(d, base):
    return ["simulate", copy_run(base, d), "--target", "loihi-emu", "--samples", 2,
            "--option", "device=cuda"]


# ---- running -------------------------------------------------------------------------------
def base_run(d: Path) -> Path:
    """A dpap-mnist run on digits: 1 epoch, magnitude-pruned (weights: ONNX coordinate
    form), exported, simulated."""
    from spikeship import cli

    run = d / "base"
    argv = ["train", "--out", run, "--dataset", "digits", "--prune", "magnitude",
            "--prune-opt", "start=0", "--prune-opt", "end=0", "--prune-opt", "initial=0.5",
            "--epochs", 1, "--threads", 1, "--no-progress", "--limit-train", 200]
    for a in (argv, ["export", run], ["simulate", run, "--target", "reference"]):
        with contextlib.redirect_stdout(io.StringIO()):
            if cli.main([str(x) for x in a]) != 0:
                raise SystemExit(f"could not build the base run: {a}")
    return run


def run_case(argv: list) -> tuple[int, str]:
    from spikeship import cli

    argv = [str(a) for a in argv]
    if argv[0] == "SUBPROCESS":
        try:
            r = subprocess.run([sys.executable, "-m", "spikeship.cli", *argv[1:]],
                               capture_output=True, text=True, timeout=60)
            return r.returncode, r.stderr
        except subprocess.TimeoutExpired:
            return -9, "timed out (hang)"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(argv)
        except MemoryError:
            rc = -12
    return rc, err.getvalue()


def judge(expect: str, rc: int, err: str) -> bool:
    lines = err.strip().splitlines()
    if expect == "ok":
        return rc == 0
    return rc not in (0, 70, 130) and rc > 0 and len(lines) == 1 \
        and lines[0].startswith("spikeship: error: ")


def main(argv: list[str] | None = None) -> None:
    from benchmarks import common

    args = common.parser(__doc__).parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with open("/proc/self/statm") as f:
        vsize = int(f.read().split()[0]) * resource.getpagesize()
    rows = []
    with tempfile.TemporaryDirectory(prefix="reliability-read-") as tmp:
        base = base_run(Path(tmp))
        resource.setrlimit(resource.RLIMIT_AS, (vsize + (6 << 30), resource.RLIM_INFINITY))
        for i, (cls, name, expect, make) in enumerate(CASES):
            d = Path(tmp) / f"case{i}"
            d.mkdir()
            argv_case = make(d, base)
            rc, err = run_case(argv_case)
            good = judge(expect, rc, err)
            line = _anonymous((err.strip().splitlines() or [""])[-1][:200], tmp)
            rows.append({"class": cls, "case": name, "expect": expect, "exit_code": rc,
                         "good": good, "message": line,
                         "command": _anonymous(" ".join(str(a)[:60] for a in argv_case), tmp)})
            print(f"[{'good' if good else 'BAD '}] class {cls} {name}: exit {rc} {line[:90]}")
    summary = {f"class {c}": {"tried": sum(r["class"] == c for r in rows),
                              "good": sum(r["class"] == c and r["good"] for r in rows),
                              "bad": sum(r["class"] == c and not r["good"] for r in rows)}
               for c in sorted({r["class"] for r in rows})}
    common.write_result(
        args, name="reliability-read", module="benchmarks.reliability_read", argv=argv,
        topic="reliability", title="Hostile inputs: reading, values, named errors",
        description="Each case is a damaged or absurd file or flag handed to the real command "
                    "(classes: 2 sizes and file kinds, 3 values checked for meaning, 4 named "
                    "errors instead of internal errors). Good: a one-line named error (never "
                    "exit 70 or 130), or exit 0 for valid input.",
        rows=rows, summary=summary)


def _anonymous(text: str, tmp: str) -> str:
    """``text`` without the temporary folder's or any other absolute path."""
    import re

    return re.sub(r"(?<![\w.>])/[\w.-]+(?:/[\w.-]+)+", "<path>", text.replace(tmp, "<tmp>"))


if __name__ == "__main__":
    main()
