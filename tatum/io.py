"""Safe file output: atomic writes and the no-overwrite rule."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tatum.errors import TatumError


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path in `path`'s folder (created if needed) to write into; on success it is renamed
    to `path` in one step, on failure removed. Keeps the file's extension, for writers that go by it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to replace an existing file unless `force`; the user's files are never lost silently."""
    path = Path(path)
    if path.exists() and not force:
        raise TatumError("exists already (use --force to replace it)", path)
    if path.is_dir():
        raise TatumError("is a folder; give a file name", path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
