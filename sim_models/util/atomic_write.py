"""The one safe write for every file the package writes in place: temp file in the same folder, fsync, rename,
fsync of the folder.

A reader sees the previous file or the new one, never half of one, and the rename itself survives a power
loss; a process killed mid-write leaves at most a stray ``PATH.<random>.tmp`` beside the file
(``rundir.checkpoint.remove_stale_temp_files`` cleans checkpoints'). JSON files go through ``atomic_write_json``.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "fsync_dir"]


def atomic_write(path, write, binary: bool = False, newline: str | None = None, permissions: int | None = 0o644,
                 before_replace=None) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temp file (text, UTF-8, or ``binary``) in the same folder,
    which is flushed, fsynced and renamed onto ``path`` (os.replace); then the folder is fsynced (the rename is
    durable). On any error the temp file is removed and the error raised; ``path`` is untouched.

    permissions: mode bits of the new file (mkstemp's are 0600); None keeps 0600.
    before_replace: called after the fsync, before the rename (a test hook, util.fault_injection.pause_point)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        if permissions is not None:
            os.fchmod(fd, permissions)
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline=newline)) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path, text: str, newline: str | None = None) -> Path:
    """``atomic_write`` of a string (UTF-8). newline: as open()'s ("" keeps the text's own line ends)."""
    return atomic_write(path, lambda f: f.write(text), newline=newline)


def atomic_write_json(path, obj, indent: int | None = 2) -> Path:
    """``obj`` as JSON (``json.dumps(obj, indent=indent)`` plus a final newline), written atomically; the parent
    folders are created. TypeError when ``obj`` is not JSON-able (nothing is written then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def fsync_dir(folder) -> None:
    """fsync a folder (best effort: some file systems cannot)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
