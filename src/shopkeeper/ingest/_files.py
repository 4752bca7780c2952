"""Find out what a source file is (format, compression, encoding) and make it readable.

DuckDB reads the data itself. Python only touches bytes where DuckDB cannot:
a zip member is extracted, and an encoding DuckDB does not read natively is
transcoded to UTF-8, both streamed in 1 MiB chunks into the workspace's tmp folder.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import re
import shutil
import zipfile
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, cast

from shopkeeper.errors import IngestError

if TYPE_CHECKING:
    from collections.abc import Iterator

FileFormat = Literal["csv", "json", "jsonl", "parquet"]
Compression = Literal["none", "gzip", "zip"]

_CHUNK = 1 << 20
_CELL_BYTES = 8
"""Text bytes per value assumed for Parquet (the benchmark's CSV: 6.6 per value)."""
_NATIVE_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16"}
"""Encodings DuckDB reads itself. Its latin-1 reader refuses bytes 0x80-0x9F, so latin-1
is transcoded by Python, whose codec accepts every byte."""
_SUFFIX_FORMAT: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".psv": "csv",
    ".data": "csv",
    ".dat": "csv",
    ".base": "csv",
    ".test": "csv",
    ".item": "csv",
    ".user": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class SourceFile:
    """A source file as found on disk."""

    path: Path
    """The file as the user named it."""
    format: FileFormat
    compression: Compression
    encoding: str
    """Python codec name of the text, after auto-detection (`utf-8` for binary formats)."""
    sha256: str
    size: int
    member: str | None = None
    """The member read from a zip archive."""

    @property
    def display(self) -> str:
        """The name used in messages and in the quarantine."""
        return f"{self.path}!{self.member}" if self.member else str(self.path)


def sha256_file(path: Path) -> str:
    """Stream a file through SHA-256; inside `hashes_reused()`, once per file."""
    memo = _HASHES.get()
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if memo is not None and key in memo:
        return memo[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if memo is not None:
        memo[key] = digest
    return digest


_HASHES: ContextVar[dict[tuple[str, int, int, int], str] | None] = ContextVar(
    "shopkeeper_file_hashes", default=None
)


@contextmanager
def hashes_reused() -> Iterator[None]:
    """Within the block, a file (same path, size, mtime and inode) is hashed once.

    One ingest needs each file's hash twice, for its fingerprint and for the source's
    description (0.3-0.5 s per pass over a 330 MB file). The memo lives only as long as
    the block, so a file rewritten later (even within one mtime tick) is hashed anew.
    """
    token = _HASHES.set({})
    try:
        yield
    finally:
        _HASHES.reset(token)


def payload_bytes(path: Path) -> int:
    """About how many bytes of data a source holds once decompressed (sizes only, no scan).

    A plain file: its size. gzip: the trailer's length, which is modulo 2**32, so never
    less than the compressed size is taken. zip: its members' sizes. Parquet: the row
    groups' decompressed size, but at least `_CELL_BYTES` per value (dictionary and
    run-length encoding hide repeats, which staging writes out as text). A folder: the
    sum over its files. A file that cannot be read this way counts its size (reading it
    later says what is wrong).
    """
    if path.is_dir():
        return sum(payload_bytes(f) for f in path.iterdir() if f.is_file())
    size = path.stat().st_size
    compression, name = _compression_of(path.name)
    try:
        if compression == "gzip" and size >= 4:
            with path.open("rb") as f:
                f.seek(-4, 2)
                return max(size, int.from_bytes(f.read(4), "little"))
        if compression == "zip":
            with zipfile.ZipFile(path) as zf:
                return max(size, sum(i.file_size for i in zf.infolist()))
        if _SUFFIX_FORMAT.get(Path(name).suffix.lower()) == "parquet":
            import pyarrow.parquet as pq

            meta = pq.read_metadata(path)
            groups = range(meta.num_row_groups)
            encoded = sum(int(meta.row_group(i).total_byte_size) for i in groups)
            return max(size, encoded, _CELL_BYTES * int(meta.num_rows) * int(meta.num_columns))
    except (OSError, zipfile.BadZipFile, ValueError):
        pass
    return size


def _compression_of(name: str) -> tuple[Compression, str]:
    """A file name's compression, and the name without its `.gz` (a zip keeps its name)."""
    lower = name.lower()
    if lower.endswith(".gz"):
        return "gzip", name[:-3]
    if lower.endswith(".zip"):
        return "zip", name
    return "none", name


def _open_payload(path: Path, compression: Compression, member: str | None) -> IO[bytes]:
    if compression == "gzip":
        return cast("IO[bytes]", gzip.open(path, "rb"))
    if compression == "zip":
        zf = zipfile.ZipFile(path)
        return zf.open(member or "")
    return path.open("rb")


def _zip_member(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/") and "__MACOSX" not in n]
    except zipfile.BadZipFile as exc:
        raise IngestError("not a readable zip archive", path=str(path)) from exc
    if len(names) != 1:
        raise IngestError(
            f"zip archive must hold exactly one file, found {len(names)}", path=str(path)
        )
    return names[0]


def _format_of(name: str, head: bytes) -> FileFormat:
    suffix = Path(name).suffix.lower()
    if suffix in _SUFFIX_FORMAT:
        if _SUFFIX_FORMAT[suffix] == "json" and head.lstrip().startswith(b"{"):
            return "jsonl"  # many `.json` exports hold one object per line
        return _SUFFIX_FORMAT[suffix]
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip()
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    return "csv"


_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
"""A well-formed UTF-8 character of two to four bytes."""
_HIGH_BYTES = bytes(range(0x80, 0x100))
MOSTLY_UTF8_MIN_CHARACTERS = 8
MOSTLY_UTF8_RATIO = 20
"""UTF-8 characters needed per stray byte for a sample to count as UTF-8 with damage."""


def mostly_utf8(sample: bytes) -> bool:
    """True when a sample is UTF-8 but for a few stray bytes.

    Text in a single-byte encoding seldom forms multi-byte UTF-8 characters, so many
    of them against few stray bytes means a UTF-8 file with a damaged line or two:
    read as UTF-8, those lines are quarantined as `invalid_encoding` and every other
    line keeps its characters (read as latin-1, every line would be garbled).

    >>> mostly_utf8(("café " * 20).encode() + b"\\xe9")
    True
    >>> mostly_utf8(("café " * 20).encode("latin-1"))
    False
    """
    valid = _UTF8_MULTIBYTE.findall(sample)
    high = len(sample) - len(sample.translate(None, _HIGH_BYTES))
    stray = high - sum(len(v) for v in valid)
    return len(valid) >= MOSTLY_UTF8_MIN_CHARACTERS and stray * MOSTLY_UTF8_RATIO <= len(valid)


def detect_encoding(sample: bytes, *, truncated: bool = False) -> str:
    """Guess a text encoding from the first bytes: UTF-8 if valid or `mostly_utf8`, else
    cp1252 or latin-1.

    Args:
        sample: the first bytes of the file.
        truncated: the file goes on after `sample`, so a multi-byte character cut
            at its end does not count against UTF-8.

    >>> detect_encoding("café".encode("utf-8"))
    'utf-8'
    >>> detect_encoding("café".encode("latin-1"))
    'latin-1'
    >>> detect_encoding(b"\\x93quoted\\x94")
    'cp1252'
    >>> detect_encoding("café".encode("utf-8")[:-1], truncated=True)
    'utf-8'
    """
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=not truncated)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if mostly_utf8(sample):
        return "utf-8"
    if any(0x80 <= b <= 0x9F for b in sample):
        try:
            sample.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            return "latin-1"
    return "latin-1"


def inspect_source(path: str | Path, encoding: str | None = None) -> SourceFile:
    """Look at a file and describe it; nothing is read beyond the first MiB and the hash.

    Raises:
        IngestError: the file does not exist, is not a file, or cannot be opened.
    """
    p = Path(path)
    if not p.exists():
        raise IngestError("no such file", path=str(p))
    if not p.is_file():
        raise IngestError("not a regular file", path=str(p))
    compression, name = _compression_of(p.name)
    member = None
    if compression == "zip":
        member = name = _zip_member(p)
    try:
        with _open_payload(p, compression, member) as f:
            head = f.read(_CHUNK)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise IngestError(f"cannot read: {exc}", path=str(p)) from exc
    if not head:
        raise IngestError("the file is empty", path=str(p))
    fmt = _format_of(name, head)
    if encoding is not None:
        try:
            enc = codecs.lookup(encoding).name
        except LookupError as exc:
            raise IngestError(f"unknown encoding {encoding!r}", path=str(p)) from exc
    else:
        cut = len(head) == _CHUNK
        enc = "utf-8" if fmt == "parquet" else detect_encoding(head, truncated=cut)
    enc = {"iso8859-1": "latin-1", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}.get(enc, enc)
    return SourceFile(p, fmt, compression, enc, sha256_file(p), p.stat().st_size, member)


def readable_path(src: SourceFile, tmp_dir: Path) -> tuple[Path, str]:
    """Return a path DuckDB can read and the encoding to pass it.

    Zip members and non-native encodings are streamed to a UTF-8 file in `tmp_dir`.
    """
    native = _NATIVE_ENCODINGS.get(src.encoding)
    if src.format == "json" and native != "utf-8":
        native = None  # read_json takes UTF-8 only: transcode
    if src.format == "parquet" and src.compression == "none":
        return src.path, "utf-8"
    if src.compression != "zip" and native is not None and src.format != "parquet":
        return src.path, native
    tmp_dir.mkdir(parents=True, exist_ok=True)
    out = tmp_dir / f"{src.sha256[:16]}-{Path(src.member or src.path.name).name}"
    if out.suffix.lower() in {".gz", ".zip"}:
        out = out.with_suffix("")
    with _open_payload(src.path, src.compression, src.member) as raw, out.open("wb") as dst:
        if native is not None or src.format == "parquet":
            shutil.copyfileobj(raw, dst, _CHUNK)
            return out, native or "utf-8"
        reader = codecs.getreader(src.encoding)(raw, "replace")
        while chunk := reader.read(_CHUNK):
            dst.write(chunk.encode("utf-8"))
    return out, "utf-8"
