"""Atomic file output: a reader sees the old file or the whole new one, never a half-written one.

Every file the project writes for users (reports, tables, summaries, map files, checkpoints, split files)
goes through :func:`atomic_path` / :func:`atomic_write`: the content is written to a hidden temporary
file in the same folder, flushed to disk, then renamed over the target (``os.replace`` is atomic on
POSIX filesystems). A process killed mid-write (even ``kill -9``) leaves at most a hidden
``.NAME.<pid>.<random>.tmp`` file, which the next process writing into that folder removes.

``TRUST_FAULT=<point>`` makes the process kill itself with SIGKILL at that named point (after part of
the data is written), so tests can show what a crash at the worst moment leaves behind.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
from pathlib import Path


def fault_point(name: str) -> None:
    """Die here, at once and without clean-up, when ``TRUST_FAULT`` names this point (tests only)."""
    if os.environ.get("TRUST_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_SWEPT: set[Path] = set()  # folders this process has already cleared of dead processes' temporaries


def remove_stale_temps(folder: str | Path) -> int:
    """Remove the temporary files (and folders, see :func:`atomic_folder`) in ``folder`` left by processes
    that no longer run; returns how many."""
    import shutil

    removed = 0
    for tmp in Path(folder).glob(".*.tmp"):
        parts = tmp.name.split(".")  # '', NAME…, pid, random, 'tmp'
        if len(parts) >= 5 and parts[-3].isdigit() and not process_alive(int(parts[-3])):
            with contextlib.suppress(OSError):
                if tmp.is_dir() and not tmp.is_symlink():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
                removed += 1
    return removed


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def writable_folder(path: str | Path, *, what: str = "--out") -> Path:
    """Refuse, before any work and creating nothing, a folder that cannot be written: a file where it should be,
    a file on its way, or a first existing ancestor that is read-only (a real write is tried there: read-only
    mounts and ACLs fool permission bits). Raises :class:`~trust_core.errors.ConfigError`."""
    import tempfile

    from .errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder: give a folder (it is created if missing)")
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {probe} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".trust-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise ConfigError(f"{what} {path} is not writable: {probe} refuses new files ({exc.strerror or exc}). "
                          f"Choose a folder you can write to") from None
    return path


def writable_file(path: str | Path, *, what: str = "--out") -> Path:
    """:func:`writable_folder` for a file's folder, and the file itself not a folder."""
    from .errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder: give a file name")
    writable_folder(path.parent, what=f"{what} {path.name}: its folder")
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


@contextlib.contextmanager
def atomic_folder(target: str | Path):
    """Yield a hidden temporary folder beside ``target``; on success it replaces ``target`` as a whole (the two
    are swapped in one step where the OS can, else by two renames) and the old folder is removed. A reader
    sees the old set of files or the new one, never a mix; a process killed before the swap leaves ``target``
    untouched (its hidden temporary folder is removed by the next writer); on an exception the temporary
    folder is removed and ``target`` left as it was."""
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)
    tmp = _temp_name(target)
    tmp.mkdir()
    try:
        yield tmp
        fault_point("before-swap")
        if target.exists():
            if not _exchange(tmp, target):
                old = _temp_name(target)
                os.rename(target, old)
                os.rename(tmp, target)
                tmp = old
            shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path next to ``target``; on success it replaces ``target`` in one step.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        fault_point("before-replace")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if target.parent not in _SWEPT:  # once per folder and process: writes stay O(1) in large folders
        remove_stale_temps(target.parent)
        _SWEPT.add(target.parent)


def create_once(target: str | Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Create ``target`` holding ``data`` (permissions ``mode``) unless it exists; never replace it.

    The data is written and flushed to a hidden temporary file (created with ``mode`` from the start), then
    hard-linked to ``target``: the link fails if ``target`` exists, so of processes racing to create it exactly
    one wins, and a reader sees no file or the whole one. Returns whether this call created ``target``. On a
    filesystem without hard links the file is created in place with ``O_EXCL`` (still never replaced).
    Raises ``OSError`` when the folder is missing or not writable.
    """
    target = Path(target)
    payload = bytes(data)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with open(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)  # exactly ``mode``, whatever the umask
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network or FAT filesystems): create in place, exclusively
            try:
                fd = os.open(target, flags, mode)
            except FileExistsError:
                return False
            with open(fd, "wb") as fh:
                os.fchmod(fh.fileno(), mode)
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write(target: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``target`` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            half = len(payload) // 2
            fh.write(payload[:half])
            fh.flush()
            fault_point("mid-write")
            fh.write(payload[half:])
    return Path(target)
