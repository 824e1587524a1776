"""Run a compiled Lava network safely: time limits, real child errors, always stopped.

Lava 0.10 runs every process in its own OS process. Three things go wrong with a
bare ``proc.run(...)``:

- an exception in a child process surfaces as ``RuntimeError("1 Exception(s)
  occurred. See output above for details.")``; the real exception sits in the
  runtime's actor objects. :func:`child_errors` digs it out and
  :class:`LavaSession` raises :class:`SimulationError` with its type, message and
  the last traceback lines;
- after such an error every child has exited, and ``proc.stop()`` then waits forever
  for answers that never come; after Ctrl-C or a time limit the children are alive
  and ``stop()`` works. :meth:`LavaSession.close` picks the right way and, if a
  graceful stop does not finish in ``stop_timeout_s``, terminates the runtime's
  own child processes (and only those) and releases the shared memory;
- a hung run blocks forever: each run waits at most until the session's deadline
  (``SIGALRM`` in the main thread interrupts Lava's blocking receive), then
  :class:`SimulationTimeoutError`;
- killed with SIGKILL, spikeship cannot stop its children: they get a parent-death
  signal and are recorded with proof of identity (:mod:`spikeship.sim.lava.orphans`).

Usage::

    with LavaSession(root_process, run_cfg, timeout_s=600) as session:
        session.compile()
        session.run(steps)          # as often as needed; Var.set/get in between
    # always stopped here, also on errors and KeyboardInterrupt
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

from spikeship.errors import SimulationError, SimulationTimeoutError
from spikeship.sim.lava import orphans


class _Alarm(BaseException):
    """Raised by the SIGALRM handler (a BaseException so Lava code cannot swallow it)."""


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_Alarm` in the main thread after ``seconds`` (no-op elsewhere/None)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    if seconds <= 0:
        raise _Alarm()

    def handler(signum, frame):  # noqa: ARG001
        raise _Alarm()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _actors(runtime) -> list:
    infra = getattr(runtime, "_messaging_infrastructure", None)
    return list(getattr(infra, "actors", []) or [])


def child_errors(runtime) -> list[tuple[BaseException, str]]:
    """``(exception, traceback text)`` of every Lava child process that failed."""
    out = []
    for actor in _actors(runtime):
        try:
            exc = actor.exception
        except (ValueError, OSError, EOFError):   # pipe already closed
            exc = getattr(actor, "_exception", None)
        if exc:
            out.append(exc)
    return out


def describe_child_errors(runtime) -> str:
    """One message naming the first failing child's exception and where it was raised."""
    errs = child_errors(runtime)
    if not errs:
        return "a Lava process failed without reporting an exception"
    exc, tb = errs[0]
    lines = [ln for ln in str(tb).strip().splitlines() if ln.strip()]
    where = " | ".join(ln.strip() for ln in lines[-4:-1]) if len(lines) > 1 else ""
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{type(exc).__name__}: {exc}{more}" + (f" [at {where}]" if where else "")


def _terminate(runtime) -> None:
    """Terminate the runtime's own child processes and free its shared memory."""
    for actor in _actors(runtime):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            if actor.is_alive():
                actor.terminate()
    for actor in _actors(runtime):
        with contextlib.suppress(ValueError, OSError, AttributeError, AssertionError):
            actor._is_done or super(type(actor), actor).join(timeout=5)
    infra = getattr(runtime, "_messaging_infrastructure", None)
    smm = getattr(infra, "_smm", None)
    with contextlib.suppress(Exception):
        if smm is not None:
            smm.shutdown()
    with contextlib.suppress(Exception):
        runtime._watchdog_manager.stop()


def _child_pids() -> set[int]:
    """PIDs of this process's live children (all threads), read from ``/proc``.

    Unlike ``multiprocessing.active_children()`` this also sees a child forked an
    instant before a Ctrl-C / time limit landed, before multiprocessing registered it.
    """
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                with open(f"/proc/self/task/{task}/children") as f:
                    pids.update(int(p) for p in f.read().split())
    return pids


def _is_resource_tracker(pid: int) -> bool:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" in f.read()
    return False


def _kill_new_children(before: set[int], grace_s: float = 3.0) -> None:
    """Terminate (then kill) children of this process that did not exist in ``before``."""
    new = {p for p in _child_pids() - before if not _is_resource_tracker(p)}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in new:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        end = time.monotonic() + grace_s
        while new and time.monotonic() < end:
            for pid in list(new):
                with contextlib.suppress(ChildProcessError, OSError):
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if done == 0:
                        continue
                new.discard(pid)
            if new:
                time.sleep(0.05)
        if not new:
            return


class LavaSession:
    """Compile once, run many times, always stop (see module docstring)."""

    def __init__(self, root, run_cfg, *, timeout_s: float | None = None,
                 stop_timeout_s: float = 30.0):
        self.root, self.run_cfg = root, run_cfg
        self.deadline = None if timeout_s is None else time.monotonic() + float(timeout_s)
        self.timeout_s = timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._failed = False
        self._started = False
        self._children_before: set[int] | None = None
        self._arm = contextlib.ExitStack()
        self._record = None

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _guard(self, what: str, fn) -> None:
        try:
            with _deadline(self._remaining()):
                fn()
        except _Alarm as e:
            raise SimulationTimeoutError(
                f"Lava simulation exceeded its time limit of {self.timeout_s} s ({what})") from e
        except RuntimeError as e:
            if "Exception(s) occurred" in str(e) or self._any_child_failed():
                self._failed = True
                raise SimulationError(f"Lava failed while {what}: "
                                      f"{describe_child_errors(self.root.runtime)}") from e
            raise SimulationError(f"Lava failed while {what}: {e}") from e

    def _any_child_failed(self) -> bool:
        rt = self.root.runtime
        return rt is not None and bool(child_errors(rt))

    def compile(self) -> None:
        """Compile the process graph and start Lava's child processes: each dies with
        this process, and they are recorded so that a later session can end them if it
        was killed anyway (:mod:`spikeship.sim.lava.orphans`)."""
        orphans.end_stale()
        self._children_before = _child_pids()
        self._arm.enter_context(orphans.armed())
        self._guard("compiling", lambda: self.root.create_runtime(run_cfg=self.run_cfg))
        workers = [p for p in _child_pids() - self._children_before
                   if not _is_resource_tracker(p)]
        self._record = orphans.record(workers)

    def run(self, steps: int) -> None:
        """Run ``steps`` time steps (blocking) within the session's deadline."""
        from lava.magma.core.run_conditions import RunSteps

        def go():
            self._started = True
            self.root.run(condition=RunSteps(num_steps=int(steps)), run_cfg=self.run_cfg)

        self._guard(f"running {steps} steps", go)

    def set(self, var, value) -> None:
        """``var.set(value)`` while paused (errors surfaced like :meth:`run`)."""
        self._guard(f"setting {var.name}", lambda: var.set(value))

    def get(self, var):
        """``var.get()`` while paused (an ndarray, or a CSR matrix for Sparse weights)."""
        box = []
        self._guard(f"reading {var.name}", lambda: box.append(var.get()))
        return box[0]

    def get_monitor(self, monitor) -> dict:
        """``monitor.get_data()`` while paused."""
        box = []
        self._guard("reading a monitor", lambda: box.append(monitor.get_data()))
        return box[0]

    def close(self) -> None:
        """Stop Lava: gracefully if possible, else terminate its child processes.

        Last, any child process started since :meth:`compile` began that is still
        alive is terminated too (a Ctrl-C landing while Lava forks leaves one that the
        runtime never registered)."""
        try:
            self._stop_runtime()
        finally:
            if self._children_before is not None:
                _kill_new_children(self._children_before)
            self._arm.close()
            orphans.forget(self._record)
            self._record = None

    def _stop_runtime(self) -> None:
        rt = getattr(self.root, "_runtime", None)
        if rt is None:
            return
        if self._failed or not self._started:
            _terminate(rt)
            return
        try:
            with _deadline(self.stop_timeout_s):
                self.root.stop()
        except BaseException:  # noqa: BLE001 - a failed stop must still free the children
            _terminate(rt)

    def __enter__(self) -> LavaSession:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
