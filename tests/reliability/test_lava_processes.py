"""20 Lava simulations in one process, some failing on purpose, leave nothing behind.

Every Lava process is an OS process. After each run, whatever its end (success, a
failing child process, a time limit, Ctrl-C while compiling or running, inputs refused
before Lava starts), this test checks:

- no child process of ours is left (``/proc/*/stat`` parent ids, zombies included),
  apart from multiprocessing's resource tracker, which lives once per interpreter;
- no new file lock held by us or a child (``/proc/locks``);
- no stream file still open or memory-mapped by us (``/proc/self/fd``, ``/proc/self/maps``),
  and the stream directory of the run is gone;
- the number of open file descriptors does not grow from run to run.

The network is tiny (6 inputs -> 4 LIF) so 20 runs take ~20 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import nir
import numpy as np
import pytest

from spikeship.errors import ConfigError, SimulationError, SimulationTimeoutError

pytestmark = [pytest.mark.lava, pytest.mark.slow]

BETA, DT = 0.2, 1e-3


def tiny_graph() -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    a = np.ones(4, np.float32)
    nodes = {"input": nir.Input(input_type={"input": np.array([2, 1, 3])}),
             "flat": nir.Flatten(input_type={"input": np.array([2, 1, 3])}, start_dim=0),
             "fc": nir.Affine(weight=rng.normal(0.3, 0.5, (4, 6)).astype(np.float32)
                              / (1 - BETA), bias=np.zeros(4, np.float32)),
             "lif": nir.LIF(tau=a * DT / (1 - BETA), r=a, v_leak=0 * a, v_threshold=0.5 * a,
                            v_reset=0 * a),
             "output": nir.Output(output_type={"output": np.array([4])})}
    names = list(nodes)
    meta = {"format": "spikeship-nir/1", "dt": DT, "reset": "zero", "timesteps": 3,
            "encoding": "frames", "source_run": "tests", "input_shape": np.array([2, 1, 3])}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), metadata=meta)


def spikes(n: int, t: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, t, 2, 1, 3)) < 0.5).astype(np.float32)


# ---- what we own: children, locks, open stream files -------------------------------------
def children() -> dict[int, str]:
    """pid -> command line of every live or zombie child of this process."""
    me, out = os.getpid(), {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == me:
                out[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
    return out


def leftover_children() -> dict[int, str]:
    return {p: c for p, c in children().items() if "resource_tracker" not in c}


def held_locks(pids) -> set[str]:
    """``/proc/locks`` entries (kind, pid, file, range) held by ``pids``."""
    pids = {str(p) for p in pids}
    return {" ".join(ln.split()[1:]) for ln in Path("/proc/locks").read_text().splitlines()
            if len(ln.split()) > 4 and ln.split()[4] in pids}


def open_stream_files() -> list[str]:
    fds = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            fds.append(os.readlink(fd))
        except OSError:
            continue
    maps = Path("/proc/self/maps").read_text().splitlines()
    return [p for p in fds + maps if "spikeship-lava-" in p]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def stream_dirs() -> set[str]:
    """This process's stream directories (the name carries the pid: other processes
    running Lava on the same machine meanwhile are not counted)."""
    out = set()
    for base in ("/dev/shm", "/tmp"):
        if Path(base).is_dir():
            out |= {str(p) for p in Path(base).glob(f"spikeship-lava-{os.getpid()}-*")}
    return out


# ---- the runs -----------------------------------------------------------------------------
class CtrlC:
    """Send ourselves SIGINT after ``delay_s`` (None: the test sends it); the handler raises
    KeyboardInterrupt only while armed, so a late signal can never hit pytest itself."""

    def __init__(self, delay_s: float):
        self.delay_s = delay_s

    def _handler(self, signum, frame):  # noqa: ARG002
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def __enter__(self):
        self.armed = True
        self.old = signal.signal(signal.SIGINT, self._handler)
        self.timer = None
        if self.delay_s is not None:
            self.timer = threading.Timer(self.delay_s, os.kill, (os.getpid(), signal.SIGINT))
            self.timer.start()
        return self

    def __exit__(self, *exc):
        self.armed = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer.join()
        signal.signal(signal.SIGINT, self.old)


def run_ok(precision):
    from spikeship.sim.lava.run import run_deployment
    from spikeship.targets.loihi.lower import lower
    from spikeship.targets.loihi.quantize import quantize

    g = tiny_graph()
    dep = lower(g) if precision == "float" else quantize(g)
    res = run_deployment(dep, spikes(2, 3), timeout_s=120)
    assert res.output_spikes.shape == (2, 3, 4)
    return "ok"


def run_child_error(_):
    """A Dense process whose fixed-point model fails inside its child process."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    from spikeship.sim.lava.session import LavaSession

    src = RingBuffer(data=np.ones((3, 4), dtype=np.int32))
    dense = Dense(weights=np.ones((2, 3)), weight_exp=0.5)
    lif = LIF(shape=(2,), du=4095, dv=0, vth=10)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    with pytest.raises(SimulationError, match="TypeError"):
        with LavaSession(src, Loihi2SimCfg(select_tag="fixed_pt"), timeout_s=120) as s:
            s.compile()
            s.run(4)
    return "child error"


def run_timeout(_):
    from spikeship.sim.lava.run import run_deployment
    from spikeship.targets.loihi.lower import lower

    with pytest.raises(SimulationTimeoutError, match="time limit"):
        run_deployment(lower(tiny_graph()), spikes(300, 60), timeout_s=1.5)
    return "timeout"


def run_ctrl_c(delay_s):
    from spikeship.sim.lava.run import run_deployment
    from spikeship.targets.loihi.lower import lower

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt), CtrlC(delay_s):
        run_deployment(lower(tiny_graph()), spikes(300, 60), timeout_s=120)
    assert time.monotonic() - t0 < 60, "Ctrl-C did not stop the run"
    return f"ctrl-c after {delay_s} s"


def run_bad_inputs(_):
    from spikeship.sim.lava.run import run_deployment
    from spikeship.targets.loihi.lower import lower

    with pytest.raises(ConfigError, match="inputs"):
        run_deployment(lower(tiny_graph()), np.zeros((2, 3, 5), np.float32), timeout_s=60)
    return "refused before Lava"


PLAN = [(run_ok, "float"), (run_ok, "fixed"), (run_child_error, None), (run_ok, "float"),
        (run_timeout, None), (run_ok, "fixed"), (run_ctrl_c, 1.0), (run_bad_inputs, None),
        (run_ok, "float"), (run_child_error, None), (run_ctrl_c, 2.0), (run_ok, "fixed"),
        (run_timeout, None), (run_ok, "float"), (run_child_error, None), (run_ok, "fixed"),
        (run_ctrl_c, 1.5), (run_ok, "float"), (run_bad_inputs, None), (run_ok, "fixed")]


def reap_leftovers(before: set[int], grace_s: float = 10.0) -> dict[int, str]:
    """Children that appeared since ``before`` and are still there after ``grace_s``; they
    are killed (by pid) so a failing test leaves no orphan behind, and returned."""
    deadline = time.monotonic() + grace_s         # a terminated child may take a moment
    while set(leftover_children()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {p: c for p, c in leftover_children().items() if p not in before}
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return left


def test_twenty_lava_runs_some_failing_leave_no_process_lock_or_file():
    from spikeship.sim.lava.compat import install

    install()
    assert len(PLAN) == 20
    dirs_before = stream_dirs()
    before = set(leftover_children())
    locks_before = held_locks([os.getpid()])      # e.g. onnxruntime's own SQLite database
    fds = []
    outcomes = []
    for i, (fn, arg) in enumerate(PLAN):
        outcomes.append(fn(arg))
        left = reap_leftovers(before)
        assert not left, f"run {i} ({outcomes[-1]}) left child processes {left}"
        locks = held_locks([os.getpid(), *children()]) - locks_before
        assert not locks, f"run {i} left file locks {locks}"
        assert not open_stream_files(), f"run {i} left stream files open or mapped"
        fds.append(fd_count())
    assert outcomes.count("ok") == 10 and outcomes.count("child error") == 3
    assert fds[-1] <= fds[1] + 2, f"file descriptors grow from run to run: {fds}"
    # stream directories of this process are removed (others' may come and go meanwhile)
    mine = stream_dirs() - dirs_before
    assert not {d for d in mine if Path(d).exists() and any(Path(d).iterdir())}


_FORK = {"armed": False, "after": 0, "seen": 0}


def _interrupt_after_fork() -> None:
    """In the parent, right after its n-th fork: a Ctrl-C arriving while Lava starts its
    processes. The real SIGINT is sent at the next Python call of this thread (a handler
    raising inside the at-fork hook itself would be ignored), i.e. still inside
    ``multiprocessing``'s start, before Lava has registered the new process: where a
    Ctrl-C lands when it arrives during the fork system call."""
    if _FORK["armed"]:
        _FORK["seen"] += 1
        if _FORK["seen"] == _FORK["after"]:
            def interrupt(frame, event, arg):  # noqa: ARG001
                sys.settrace(None)
                os.kill(os.getpid(), signal.SIGINT)
            sys.settrace(interrupt)


os.register_at_fork(after_in_parent=_interrupt_after_fork)


@pytest.mark.parametrize("after", [1, 3])
def test_ctrl_c_while_lava_starts_its_processes_leaves_no_child(after):
    from spikeship.sim.lava.run import run_deployment
    from spikeship.targets.loihi.lower import lower

    before = set(leftover_children())
    _FORK.update(armed=True, after=after, seen=0)
    try:
        with pytest.raises(KeyboardInterrupt), CtrlC(None):
            run_deployment(lower(tiny_graph()), spikes(2, 3), timeout_s=120)
    finally:
        _FORK["armed"] = False
    assert _FORK["seen"] >= after, "Lava started fewer processes than expected"
    left = reap_leftovers(before, grace_s=3.0)
    assert not left, f"Ctrl-C after fork {after} left child processes {left}"
    assert not open_stream_files()
