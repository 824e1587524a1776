"""``spikeship.procstat`` on real processes, one with spaces and ``)`` in its name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from spikeship import procstat

NAMED = "open('/proc/self/comm', 'w').write('a) b ) c'); import time; time.sleep(60)"


def _wait_for(cond, timeout=10.0) -> bool:
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        time.sleep(0.01)
    return cond()


def test_fields_of_a_process_whose_name_holds_spaces_and_parentheses():
    p = subprocess.Popen([sys.executable, "-c", NAMED])
    try:
        assert _wait_for(lambda: b"a) b ) c" in open(f"/proc/{p.pid}/stat", "rb").read())
        assert procstat.parent(p.pid) == os.getpid()
        started = procstat.start_time(p.pid)
        assert started is not None and started >= procstat.start_time(os.getpid())
        assert procstat.state(p.pid) in ("S", "R")
        p.send_signal(signal.SIGSTOP)
        assert _wait_for(lambda: procstat.state(p.pid) == "T")
    finally:
        p.kill()
        p.wait()
    assert procstat.fields(p.pid) is None and procstat.start_time(p.pid) is None
    assert procstat.state(p.pid) is None and procstat.parent(p.pid) is None
