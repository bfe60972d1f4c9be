"""sim_models.util.atomic_write: the one temp-file + fsync + rename (+ folder fsync) helper."""
import os
import stat

import pytest

from sim_models.util.atomic_write import atomic_write, atomic_write_text


def test_writes_text_with_readable_permissions_and_no_temp_left(tmp_path):
    p = atomic_write_text(tmp_path / "a.json", "{}\n")
    assert p.read_text() == "{}\n"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def boom(f):
        f.write("half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(path, boom)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_before_replace_runs_after_the_data_is_written_but_before_the_rename(tmp_path):
    path, seen = tmp_path / "c.bin", []
    atomic_write(path, lambda f: f.write(b"xy"), binary=True, permissions=None,
                 before_replace=lambda: seen.append((path.exists(), sorted(os.listdir(tmp_path)))))
    assert seen[0][0] is False and seen[0][1][0].startswith("c.bin.") and seen[0][1][0].endswith(".tmp")
    assert path.read_bytes() == b"xy" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
