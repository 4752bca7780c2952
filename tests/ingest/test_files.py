"""What a source file is: format, compression, encoding; and making it readable for DuckDB."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import zipfile

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shopkeeper.errors import IngestError
from shopkeeper.ingest import (
    detect_encoding,
    hashes_reused,
    inspect_source,
    payload_bytes,
    sha256_file,
)
from shopkeeper.ingest._files import mostly_utf8, readable_path
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest

TEXT = "name,note\ncafé,“smart” quotes – ok\n"


# -- detect_encoding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"plain ascii,1\n", "utf-8"),
        ("café,日本\n".encode(), "utf-8"),
        (b"\xef\xbb\xbfa,b\n", "utf-8"),
        ("café".encode("latin-1"), "latin-1"),  # é last: not the start of a cut character
        ("x,café".encode("latin-1"), "latin-1"),
        ("café,naïve\n".encode("latin-1"), "latin-1"),
        ("“smart” – quotes €\n".encode("cp1252"), "cp1252"),
        (b"a\x81b\x93", "latin-1"),  # 0x81 is undefined in cp1252
        ("a,b\n".encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_LE + "a".encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + "a".encode("utf-16-be"), "utf-16"),
    ],
)
def test_detect_encoding(data, expected) -> None:
    assert detect_encoding(data) == expected


@given(st.text(max_size=200))
def test_detect_encoding_accepts_any_utf8(text) -> None:
    assert detect_encoding(text.encode("utf-8")) == "utf-8"


@given(
    st.text(alphabet=st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1, max_size=50)
)
def test_detect_encoding_reads_latin1_letters_back(text) -> None:
    data = text.encode("latin-1")
    assume(not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)))  # "þÿ", "ÿþ"
    enc = detect_encoding(data)
    decoded = data.decode(enc)  # whatever was chosen reads the whole sample
    if enc != "utf-8":  # some latin-1 byte runs are valid UTF-8 too
        assert decoded == text


@given(st.binary(max_size=64))
def test_the_detected_encoding_decodes_the_sample(data) -> None:
    """Every byte reads, except the few stray bytes of a sample that is mostly UTF-8."""
    enc = detect_encoding(data)
    assert enc in {"utf-8", "utf-16", "cp1252", "latin-1"}
    if enc == "utf-8" and mostly_utf8(data):
        text = data.decode("utf-8", errors="replace")
        kept = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
        assert 0 < text.count("\ufffd") * 20 <= kept
    elif enc != "utf-16":
        data.decode(enc)


def test_utf8_with_a_stray_byte_stays_utf8_and_quarantines_that_line(tmp_path) -> None:
    """One latin-1 byte in a UTF-8 file damages its line, not every accented letter."""
    lines = [f"SKU{i},Café crème n°{i}" for i in range(30)]
    body = ("item_id,title\n" + "\n".join(lines[:12]) + "\n").encode()
    body += b"SKUX,Caf\xe9 broken\n" + ("\n".join(lines[12:]) + "\n").encode()
    p = tmp_path / "items.csv"
    p.write_bytes(body)
    assert inspect_source(p).encoding == "utf-8"
    ws = Workspace.at(tmp_path / "ws")
    (out,) = ingest(ws, IngestRequest(p, "generic", "items"))
    assert (out["clean_rows"], out["quarantined_rows"]) == (30, 1)
    assert out["reasons"] == {"invalid_encoding": 1}
    with Warehouse(ws, read_only=True) as wh:
        _, titles = wh.query("SELECT title FROM items ORDER BY item_id LIMIT 1")
        _, bad = wh.query("SELECT reason, source_line FROM quarantine")
    assert titles == [("Café crème n°0",)]
    assert bad == [("invalid_encoding", 14)]


def test_a_cut_character_at_the_end_of_a_truncated_sample_is_still_utf8() -> None:
    sample = ("x" * 10 + "é").encode()[:-1]
    assert detect_encoding(sample, truncated=True) == "utf-8"
    assert detect_encoding(sample) == "latin-1"


def test_inspect_reads_a_utf8_character_cut_by_the_first_mib(tmp_path) -> None:
    head = b"a" * ((1 << 20) - 1) + "é".encode()  # é straddles the 1 MiB sample
    p = tmp_path / "big.csv"
    p.write_bytes(b"col\n" + head[4:] + b"\n")
    assert inspect_source(p).encoding == "utf-8"


# -- inspect_source ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "fmt"),
    [
        ("a.csv", b"a,b\n1,2\n", "csv"),
        ("a.TSV", b"a\tb\n", "csv"),
        ("a.txt", b"a;b\n", "csv"),
        ("a.jsonl", b'{"a": 1}\n', "jsonl"),
        ("a.ndjson", b'{"a": 1}\n', "jsonl"),
        ("a.json", b'[{"a": 1}]', "json"),
        ("a.json", b'\n {"a": 1}\n{"a": 2}\n', "jsonl"),
        ("a.parquet", b"PAR1....", "parquet"),
        ("noext", b"PAR1....", "parquet"),
        ("noext", b'  [{"a": 1}]', "json"),
        ("noext", b'{"a": 1}\n{"a": 2}\n', "jsonl"),
        ("noext", b"a,b\n1,2\n", "csv"),
    ],
)
def test_format_by_suffix_then_content(tmp_path, name, data, fmt) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    src = inspect_source(p)
    assert src.format == fmt
    assert src.compression == "none"
    assert src.member is None


def test_hash_and_size(tmp_path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"a,b\n1,2\n")
    src = inspect_source(p)
    assert src.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest() == sha256_file(p)
    assert src.size == 8
    assert src.display == str(p)


def test_hashes_reused_reads_each_file_once_and_only_inside(tmp_path, monkeypatch) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"a,b\n1,2\n")
    real = hashlib.sha256
    made: list[int] = []

    def counting() -> hashlib._Hash:
        made.append(1)
        return real()

    monkeypatch.setattr(hashlib, "sha256", counting)
    with hashes_reused():
        assert sha256_file(p) == inspect_source(p).sha256 == real(b"a,b\n1,2\n").hexdigest()
        assert len(made) == 1
        p.write_bytes(b"a,b\n1,2,3\n")  # another size: hashed anew
        assert sha256_file(p) == real(b"a,b\n1,2,3\n").hexdigest()
    p.write_bytes(b"a,b\n9,9,9\n")  # same size, maybe the same mtime tick
    assert sha256_file(p) == real(b"a,b\n9,9,9\n").hexdigest()
    assert sha256_file(p) == real(b"a,b\n9,9,9\n").hexdigest()
    assert len(made) == 4  # outside the block, every call reads the file


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("latin-1", "latin-1"), ("cp1252", "cp1252"), ("utf-16", "utf-16")],
)
def test_inspect_detects_the_encoding(tmp_path, encoding, expected) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(("name\ncafé\n" if encoding == "latin-1" else TEXT).encode(encoding))
    assert inspect_source(p).encoding == expected


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("latin1", "latin-1"),
        ("ISO-8859-1", "latin-1"),
        ("UTF8", "utf-8"),
        ("windows-1252", "cp1252"),
        ("utf-16-le", "utf-16"),
    ],
)
def test_encoding_override_is_normalized(tmp_path, given_name, expected) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"a\n1\n")
    assert inspect_source(p, given_name).encoding == expected


def test_unknown_encoding_override_is_an_ingest_error(tmp_path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"a\n1\n")
    with pytest.raises(IngestError, match="unknown encoding"):
        inspect_source(p, "klingon-8")


def test_gzip_is_looked_into(tmp_path) -> None:
    p = tmp_path / "events.csv.gz"
    p.write_bytes(gzip.compress(TEXT.encode("cp1252")))
    src = inspect_source(p)
    assert (src.format, src.compression, src.encoding) == ("csv", "gzip", "cp1252")


def test_gzip_without_a_known_suffix_is_sniffed(tmp_path) -> None:
    p = tmp_path / "export.gz"
    p.write_bytes(gzip.compress(b'[{"a": 1}]'))
    assert inspect_source(p).format == "json"


def test_single_member_zip(tmp_path) -> None:
    p = tmp_path / "export.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("folder/", "")
        zf.writestr("__MACOSX/._events.jsonl", "junk")
        zf.writestr("folder/events.jsonl", '{"a": 1}\n')
    src = inspect_source(p)
    assert (src.format, src.compression, src.member) == ("jsonl", "zip", "folder/events.jsonl")
    assert src.display == f"{p}!folder/events.jsonl"


def test_multi_member_zip_is_refused(tmp_path) -> None:
    p = tmp_path / "export.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("a.csv", "a\n1\n")
        zf.writestr("b.csv", "a\n2\n")
    with pytest.raises(IngestError, match="exactly one file, found 2") as info:
        inspect_source(p)
    assert info.value.path == str(p)


def test_empty_zip_is_refused(tmp_path) -> None:
    p = tmp_path / "export.zip"
    with zipfile.ZipFile(p, "w"):
        pass
    with pytest.raises(IngestError, match="found 0"):
        inspect_source(p)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("empty.csv.gz", gzip.compress(b""), "empty"),
        ("broken.csv.gz", b"\x1f\x8b\x08garbage", "cannot read"),
        ("notgzip.csv.gz", b"a,b\n1,2\n", "cannot read"),
        ("broken.zip", b"PK\x03\x04 not really", "not a readable zip"),
    ],
)
def test_unreadable_files_are_ingest_errors(tmp_path, name, data, message) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(IngestError, match=message) as info:
        inspect_source(p)
    assert info.value.path == str(p)


def test_missing_file_and_folder_are_ingest_errors(tmp_path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        inspect_source(tmp_path / "nope.csv")
    with pytest.raises(IngestError, match="not a regular file"):
        inspect_source(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_file_without_read_permission_is_an_ingest_error(tmp_path) -> None:
    p = tmp_path / "secret.csv"
    p.write_bytes(b"a\n1\n")
    p.chmod(0)
    try:
        with pytest.raises(IngestError, match="cannot read"):
            inspect_source(p)
    finally:
        p.chmod(0o600)


# -- readable_path -------------------------------------------------------------------------


def test_latin1_is_transcoded_even_with_c1_bytes(tmp_path) -> None:
    # DuckDB's own latin-1 reader refuses 0x80-0x9F; Python's codec takes every byte.
    p = tmp_path / "a.csv"
    p.write_bytes("name\ncafé\n".encode("latin-1") + b"x\x85y\n")
    src = inspect_source(p, "latin-1")
    path, enc = readable_path(src, tmp_path / "tmp")
    assert enc == "utf-8"
    assert path.read_text(encoding="utf-8") == "name\ncafé\nx\x85y\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_native_encodings_are_read_in_place(tmp_path, encoding) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes("name\ncafé\n".encode(encoding))
    src = inspect_source(p)
    assert readable_path(src, tmp_path / "tmp") == (p, encoding)
    assert not (tmp_path / "tmp").exists()


def test_cp1252_is_transcoded_to_utf8_in_chunks(tmp_path) -> None:
    # more than the 1 MiB chunk, with non-ASCII characters on both sides of the boundary
    line = "“quoted” – café €\n"
    text = "col\n" + line * (3 * (1 << 20) // len(line.encode("cp1252")))
    p = tmp_path / "big.csv"
    p.write_bytes(text.encode("cp1252"))
    src = inspect_source(p)
    assert src.encoding == "cp1252"
    out, enc = readable_path(src, tmp_path / "tmp")
    assert enc == "utf-8"
    assert out.parent == tmp_path / "tmp"
    assert out.read_text(encoding="utf-8") == text


def test_zip_member_is_extracted(tmp_path) -> None:
    p = tmp_path / "export.zip"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/events.csv", TEXT.encode("utf-16"))
    src = inspect_source(p)
    out, enc = readable_path(src, tmp_path / "tmp")
    assert out.name.endswith("events.csv")
    assert enc == "utf-16"
    assert out.read_bytes() == TEXT.encode("utf-16")


def test_gzipped_cp1252_is_decompressed_and_transcoded(tmp_path) -> None:
    p = tmp_path / "events.csv.gz"
    p.write_bytes(gzip.compress(TEXT.encode("cp1252")))
    out, enc = readable_path(inspect_source(p), tmp_path / "tmp")
    assert enc == "utf-8"
    assert out.suffix == ".csv"
    assert out.read_text(encoding="utf-8") == TEXT


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_json_that_is_not_utf8_is_transcoded(tmp_path, encoding) -> None:
    # read_json only reads UTF-8, even where read_csv takes latin-1 or utf-16 natively
    p = tmp_path / "items.json"
    p.write_bytes('[{"title": "café"}]'.encode(encoding))
    out, enc = readable_path(inspect_source(p), tmp_path / "tmp")
    assert enc == "utf-8"
    assert out.read_text(encoding="utf-8") == '[{"title": "café"}]'


def test_gzipped_parquet_is_decompressed(tmp_path) -> None:
    p = tmp_path / "items.parquet.gz"
    p.write_bytes(gzip.compress(b"PAR1 fake"))
    src = inspect_source(p)
    assert (src.format, src.compression) == ("parquet", "gzip")
    out, _ = readable_path(src, tmp_path / "tmp")
    assert out.suffix == ".parquet"
    assert out.read_bytes() == b"PAR1 fake"


# -- payload_bytes -------------------------------------------------------------------------


def test_payload_bytes_sees_through_compression(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = b"user_id,item_id\n" + b"17850,85123A\n" * 20_000  # compresses ~100x
    plain = tmp_path / "plain" / "e.csv"
    plain.parent.mkdir()
    plain.write_bytes(text)
    gz = tmp_path / "e.csv.gz"
    gz.write_bytes(gzip.compress(text))
    zp = tmp_path / "e.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("e.csv", text)
    pqf = tmp_path / "e.parquet"
    pq.write_table(pa.table({"s": ["17850,85123A"] * 20_000}), pqf, compression="zstd")
    assert payload_bytes(plain) == len(text)
    assert gz.stat().st_size < len(text) // 20
    assert payload_bytes(gz) == len(text)
    assert payload_bytes(zp) == len(text)
    assert payload_bytes(pqf) == 8 * 20_000  # 8 bytes per value at least
    assert pqf.stat().st_size < 8 * 20_000 // 50
    assert payload_bytes(plain.parent) == len(text)  # a folder: the sum of its files
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"no")  # too short for a trailer: its size
    assert payload_bytes(broken) == 2
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip archive")
    assert payload_bytes(fake) == len(b"not a zip archive")
