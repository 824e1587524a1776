"""Atomic writes leave either the old file or the complete new one."""

import json
import os

import pytest

from spikeship.errors import RunDirError
from spikeship.io import append_jsonl, atomic_path, read_jsonl, write_json_atomic


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.json"
    write_json_atomic(p, {"x": 1})
    write_json_atomic(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_crash_inside_atomic_path_keeps_old_file_and_no_temp(tmp_path):
    p = tmp_path / "model.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert p.read_bytes() == b"old"
    assert [f.name for f in tmp_path.iterdir()] == ["model.bin"]


def test_jsonl_ignores_trailing_partial_line(tmp_path):
    p = tmp_path / "m.jsonl"
    append_jsonl(p, {"epoch": 1})
    append_jsonl(p, {"epoch": 2})
    with open(p, "a") as f:
        f.write('{"epoch": 3, "trai')
    assert [r["epoch"] for r in read_jsonl(p)] == [1, 2]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_dir_is_named_error(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    with pytest.raises(RunDirError, match="not writable"):
        write_json_atomic(d / "x.json", {})


def test_output_path_that_is_a_file_is_named_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        write_json_atomic(f / "x.json", {})
