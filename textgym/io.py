"""The one place that writes files and folders atomically.

A reader of a path written here sees either the complete old version or the complete new one,
never a half-written file, a missing folder, or a mix, even when the writer is killed between any
two file operations (tested by fault injection in ``tests/test_atomic.py``).

* files: written to a temporary sibling, flushed to disk, then ``os.replace``-d into place;
* folders: built in a temporary sibling, then swapped with the old folder in one
  ``renameat2(RENAME_EXCHANGE)`` call on Linux. Where the kernel or file system cannot exchange,
  two renames are used and :func:`recover_dir` (called by the next write and by
  :func:`read_dir`) puts the old folder back if a writer died between them.

Temporary siblings are named ``.<name>.<pid>-<random>.tmp`` (``.old`` for a replaced folder); the
next write to the same path removes those whose writer process is gone, so killed writers do not
leave large files piling up.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

__all__ = ["atomic_dir", "atomic_file", "atomic_write", "atomic_write_json", "check_writable_dir", "json_lines",
           "check_writable_file", "clean_orphans", "read_dir", "read_json", "read_text", "recover_dir"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class _FileSystem:
    """The file operations the writers use, in one object so tests can inject faults between them."""

    replace = staticmethod(os.replace)
    rmtree = staticmethod(shutil.rmtree)
    unlink = staticmethod(os.unlink)
    fsync = staticmethod(os.fsync)

    @staticmethod
    def exchange(a: Path, b: Path) -> bool:
        """Swap two paths in one step; False where the platform cannot."""
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.renameat2
        except (OSError, AttributeError):
            return False
        if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return True
        err = ctypes.get_errno()
        import errno

        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
            return False
        raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


_fs = _FileSystem()


def _tmp_name(dest: Path, suffix: str) -> Path:
    return dest.parent / f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def _writer_alive(name: str, dest_name: str) -> bool:
    """Whether the process that made temporary sibling ``name`` of ``dest_name`` still runs."""
    pid_part = name[len(dest_name) + 2 :].split("-", 1)[0]
    if not pid_part.isdigit():
        return True  # not ours: leave it alone
    pid = int(pid_part)
    if pid == os.getpid():
        return True  # a writer of this process (another thread, or one still unwinding)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_orphans(dest: str | os.PathLike) -> list[Path]:
    """Remove temporary siblings of ``dest`` left by writers that were killed. Returns what went."""
    dest = Path(dest)
    removed = []
    if not dest.parent.is_dir():
        return removed
    prefix = f".{dest.name}."
    for entry in dest.parent.iterdir():
        if not entry.name.startswith(prefix) or not entry.name.endswith((".tmp", ".old")):
            continue
        if _writer_alive(entry.name, dest.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed.append(entry)
    return removed


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            _fs.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on a clean exit it replaces ``path``.

    Example:
        >>> import tempfile, os
        >>> target = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> with atomic_file(target, "w", encoding="utf-8") as fh:
        ...     _ = fh.write("hello")
        >>> open(target).read()
        'hello'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file mode must be 'w' or 'wb', got {mode!r}")
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_orphans(dest)
    tmp = _tmp_name(dest, ".tmp")
    done = False
    try:
        with open(tmp, mode, encoding=encoding if "b" not in mode else None) as handle:
            yield handle
            handle.flush()
            _fs.fsync(handle.fileno())
        _fs.replace(tmp, dest)
        done = True
        _fsync_dir(dest.parent)
    finally:
        if not done and tmp.exists():
            _fs.unlink(tmp)


def atomic_write(path: str | os.PathLike, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write ``data`` (bytes, or text in ``encoding``) to ``path`` atomically. Returns the path."""
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_file(path, "wb") as handle:
        handle.write(payload)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """``json.dumps(obj)`` written atomically (UTF-8, indented by 2 unless ``indent`` is given)."""
    dumps_kwargs.setdefault("indent", 2)
    dumps_kwargs.setdefault("ensure_ascii", False)
    return atomic_write(path, json.dumps(obj, **dumps_kwargs) + "\n")


def recover_dir(dest: str | os.PathLike) -> None:
    """Undo a folder swap that a killed writer left half done (the old folder comes back).

    Only the two-rename fallback of :func:`atomic_dir` can leave this state: ``dest`` missing
    and the old folder parked in a ``.old`` sibling.
    """
    dest = Path(dest)
    if dest.exists() or not dest.parent.is_dir():
        return
    parked = sorted(p for p in dest.parent.glob(f".{dest.name}.*.old") if p.is_dir())
    if parked:
        with contextlib.suppress(FileNotFoundError):  # another reader may have restored it first
            os.rename(parked[-1], dest)


def read_dir(dest: str | os.PathLike) -> Path:
    """``dest`` after :func:`recover_dir`: call it before reading a folder written by :func:`atomic_dir`."""
    recover_dir(dest)
    return Path(dest)


def atomic_dir(dest: str | os.PathLike, write: Callable[[Path], None], *, keep_existing: bool = False) -> Path:
    """Call ``write(tmp_folder)``, then put the folder at ``dest`` in place of an older one.

    Readers see the old complete folder or the new complete one. If ``write`` raises, ``dest`` is
    untouched and the temporary folder is removed.

    Args:
        dest: The folder to write.
        write: Fills the temporary folder it is given.
        keep_existing: If another writer created ``dest`` meanwhile, keep theirs (a cache that
            any one writer may fill) instead of replacing it.

    Returns:
        ``dest`` as a Path.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(dest)
    clean_orphans(dest)
    tmp = _tmp_name(dest, ".tmp")
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_dir(tmp)
        if dest.exists() and keep_existing:
            pass  # someone else filled the cache first: theirs stands, ours is removed below
        elif dest.exists() and _fs.exchange(tmp, dest):
            pass  # tmp now holds the old folder
        elif dest.exists():
            old = _tmp_name(dest, ".old")
            _fs.replace(dest, old)  # fallback: a kill here is undone by recover_dir
            _fs.replace(tmp, dest)
            tmp = old
        else:
            _fs.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        if tmp.exists():
            _fs.rmtree(tmp, ignore_errors=True)
    return dest


def _probe(folder: Path, target: Path, what: str) -> None:
    """Make ``folder`` and write (then remove) a small file in it; OSError says why it failed."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{what} {target} cannot be created: {ancestor} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = _tmp_name(folder / ".write-probe", ".tmp")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise type(exc)(exc.errno, f"{what} {target} cannot be written: {exc.strerror or exc}") from None


def check_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Make folder ``path`` and check that files can be written in it, before any long work.

    Raises:
        OSError: It cannot be made or written (the message names ``what`` and the path).

    Example:
        >>> check_writable_dir("/etc/passwd/run", "--out")
        Traceback (most recent call last):
        ...
        NotADirectoryError: --out /etc/passwd/run cannot be created: /etc/passwd is a file, not a folder
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file, not a folder")
    _probe(path, path, what)
    return path


def check_writable_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Make the folder of file ``path`` and check that it can be written there, before any long work."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give a file name")
    _probe(path.parent, path, what)
    return path


def read_text(path: str | os.PathLike, what: str = "") -> str:
    """A UTF-8 text file's contents; bad UTF-8 raises ValueError naming the file and byte offset."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what + ' ' if what else ''}{path} is not valid UTF-8 ({err.reason} at byte "
                         f"{err.start}); the file may be corrupt or in another encoding") from None


def json_lines(lines: Iterable[str], where: Any) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank JSON line; a bad line raises ValueError naming ``where:line``.

    >>> list(json_lines(['{"a": 1}', "", "[2]"], "x.jsonl"))
    [(1, {'a': 1}), (3, [2])]
    >>> list(json_lines(["{oops"], "x.jsonl"))
    Traceback (most recent call last):
    ...
    ValueError: x.jsonl:1: not JSON (Expecting property name enclosed in double quotes)
    """
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}:{number}: not JSON ({err.msg})") from None
        except RecursionError:
            raise ValueError(f"{where}:{number}: nested too deeply to be read as JSON") from None


def read_json(path: str | os.PathLike, what: str = "") -> Any:
    """A JSON file's value; bad UTF-8, truncation or syntax errors raise ValueError naming the file."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what + ' ' if what else ''}{path} is not valid JSON ({err.msg} at line {err.lineno}, "
                         f"column {err.colno}); the file may be truncated or corrupt") from None
    except RecursionError:
        raise ValueError(f"{what + ' ' if what else ''}{path} is nested too deeply to be read as JSON") from None
