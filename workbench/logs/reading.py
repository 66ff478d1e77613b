"""Reading raw log lines: plain or gzip files, bytes buffers and iterables of lines.

Lines are split on ``\\n`` only (a trailing ``\\r`` is dropped), so line numbers match ``wc -l``.
A line that cannot be parsed at all (too long, binary data) is kept as a :class:`RawLine` that says
why, so the parsed table still has one row per input line; invalid UTF-8 is replaced and noted.

>>> [x.text for x in read_lines(b"a\\r\\nb\\n")]
['a', 'b']
>>> [x.error for x in read_lines([b"ok", b"bad\\x00"])]
[None, 'binary data (NUL byte)']
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_LINE_BYTES",
    "RawLine",
    "TextLines",
    "is_gzip",
    "log_path",
    "raw_lines",
    "read_lines",
    "read_texts",
]

MAX_LINE_BYTES = 64 * 1024  #: longer lines are kept as unparsed rows, not mined
_BLOCK = 1 << 22  # bytes read and decoded at a time by read_texts


@dataclass(frozen=True)
class RawLine:
    """One decoded input line."""

    text: str
    error: str | None = None  # set when the line cannot be parsed at all
    note: str | None = None  # set when it was repaired (invalid UTF-8 replaced)


class TextLines(list):  # type: ignore[type-arg]
    """Lines already read by :func:`read_texts` (plain text, or a :class:`RawLine` that says why
    it cannot be parsed): :func:`read_texts` passes them through as they are, so a log read in
    chunks is decoded once, a block at a time, exactly as when it is read whole."""


def _decode(raw: bytes, max_bytes: int) -> RawLine:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if len(raw) > max_bytes:
        return RawLine(raw[:200].decode("utf-8", "replace"), f"line too long ({len(raw)} bytes)")
    if b"\x00" in raw:
        return RawLine(raw[:200].decode("utf-8", "replace"), "binary data (NUL byte)")
    try:
        return RawLine(raw.decode("utf-8"))
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        bad = sum(1 for ch in text if ch == "\ufffd")
        if bad > max(4, len(text) // 4):
            return RawLine(text[:200], "binary data (not UTF-8 text)")
        return RawLine(text, note="invalid UTF-8 replaced")


def _text_line(item: str, max_bytes: int) -> RawLine:
    text = item.rstrip("\n").removesuffix("\r")
    if len(text) > max_bytes:
        return RawLine(text[:200], f"line too long ({len(text)} characters)")
    if "\x00" in text:
        return RawLine(text[:200], "binary data (NUL byte)")
    return RawLine(text)


def read_lines(
    source: str | Path | bytes | Iterable[str | bytes], max_bytes: int = MAX_LINE_BYTES
) -> Iterator[RawLine]:
    """Yield the lines of a file (plain or ``.gz``), a bytes buffer, or an iterable of lines,
    lazily, as :class:`RawLine` records (the decoded text and, when the line cannot be parsed,
    why)."""
    if isinstance(source, bytes | str | Path):
        yield from (_decode(r, max_bytes) for r in raw_lines(source))
        return
    for item in source:
        if isinstance(item, bytes):
            yield _decode(item.rstrip(b"\n"), max_bytes)
        else:
            yield _text_line(item, max_bytes)


def read_texts(
    source: str | Path | bytes | Iterable[str | bytes], max_bytes: int = MAX_LINE_BYTES
) -> Iterator[str | RawLine]:
    """The lines of :func:`read_lines`, except that a line read cleanly (no error, no note)
    comes as its plain text: files are decoded a block of lines at a time, not line by line.

    >>> list(read_texts(b"a\\r\\nb\\n"))
    ['a', 'b']
    >>> [getattr(x, "error", None) for x in read_texts([b"ok", b"bad\\x00"])]
    [None, 'binary data (NUL byte)']
    """
    if isinstance(source, bytes | str | Path):
        with _open(source) as fh, _corrupt_gzip_is_value_error(source):
            for block in _blocks(fh):
                yield from _decode_block(block, max_bytes)
        return
    if isinstance(source, TextLines):
        yield from source
        return
    block = _one_block(source)
    if block is not None:  # a list of byte lines (a piece of a file) is decoded at once
        yield from _decode_block(block, max_bytes)
        return
    for item in source:
        if isinstance(item, bytes):
            yield _decode_clean(item.rstrip(b"\n"), max_bytes)
            continue
        text = item.rstrip("\n").removesuffix("\r")
        yield text if len(text) <= max_bytes and "\x00" not in text else _text_line(item, max_bytes)


def _one_block(source: Any) -> bytes | None:
    """A list of byte lines as one block of lines (each ending in a newline), or None when it
    holds anything else or a line holds a newline of its own (then it goes line by line).

    >>> _one_block([b"a", b"", b"c\\r"]), _one_block([b"a\\n"]), _one_block(["a"])
    (b'a\\n\\nc\\r\\n', None, None)
    """
    if not isinstance(source, list) or not source or source[0].__class__ is not bytes:
        return None
    try:
        block = b"\n".join(source)
    except TypeError:
        return None
    return block + b"\n" if block.count(b"\n") == len(source) - 1 else None


def _decode_clean(raw: bytes, max_bytes: int) -> str | RawLine:
    """One line as :func:`read_texts` gives it: its text when it reads cleanly."""
    line = raw[:-1] if raw.endswith(b"\r") else raw
    if len(line) <= max_bytes and b"\x00" not in line:
        with contextlib.suppress(UnicodeDecodeError):  # else noted by _decode
            return line.decode("utf-8")
    return _decode(raw, max_bytes)


def _decode_block(block: bytes, max_bytes: int) -> list[str | RawLine]:
    """The lines of ``block`` (whole lines, the last newline optional) as :func:`read_texts`
    gives them; a block with a NUL byte, invalid UTF-8 or a very long line goes line by line."""
    text = None
    if b"\x00" not in block:
        with contextlib.suppress(UnicodeDecodeError):  # such a block goes line by line
            text = block.decode("utf-8")
    if text is not None:
        lines: list[str] = text.split("\n")
        if block.endswith(b"\n"):
            lines.pop()
        if "\r" in text:
            lines = [x[:-1] if x.endswith("\r") else x for x in lines]
        # a character takes at most 4 bytes, so only a line this long can be over the limit
        if len(block) <= max_bytes or max(map(len, lines), default=0) * 4 <= max_bytes:
            return lines  # type: ignore[return-value]
    raw = block.split(b"\n")
    if block.endswith(b"\n"):
        raw.pop()
    return [_decode(r, max_bytes) for r in raw]


def _blocks(fh: Any) -> Iterator[bytes]:
    """The content of a binary file in blocks of whole lines (the last may lack its newline)."""
    pending: list[bytes] = []
    while chunk := fh.read(_BLOCK):
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:  # no line ends in this chunk
            pending.append(chunk)
            continue
        yield b"".join([*pending, chunk[:cut]])
        pending = [chunk[cut:]] if cut < len(chunk) else []
    if pending:
        yield b"".join(pending)


def _open(source: str | Path | bytes) -> Any:
    """A binary file object over a path (plain or gzip) or a bytes buffer."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    path = log_path(source)
    return (gzip.open if is_gzip(path) else open)(path, "rb")


def log_path(source: str | Path) -> Path:
    """``source`` as the path of an existing log file; a clear error when it is missing or a
    directory."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"log file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a log file, got a directory: {path}")
    return path


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (read whatever its name)."""
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def raw_lines(source: Any) -> Iterator[Any]:
    """The lines of a path (plain or gzip) or a bytes buffer as bytes without their newline,
    lazily; any other iterable of lines is passed through as it is."""
    if isinstance(source, bytes | str | Path):
        with _open(source) as fh, _corrupt_gzip_is_value_error(source):
            yield from _split_bytes(fh)
        return
    yield from source


@contextlib.contextmanager
def _corrupt_gzip_is_value_error(source: Any) -> Iterator[None]:
    """A gzip file cut short or damaged is a ValueError that names the file (one line for the
    command line), not the decompressor's EOFError halfway through a parse."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        name = "the input" if isinstance(source, bytes) else str(source)
        raise ValueError(f"{name}: truncated or corrupt gzip file ({exc})") from None


def _split_bytes(fh: Any) -> Iterator[bytes]:
    for raw in fh:
        yield raw[:-1] if raw.endswith(b"\n") else raw
