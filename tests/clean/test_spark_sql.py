"""The Spark engine's SQL rewrites and its checks (no Spark needed)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from shopkeeper.clean._spark import (
    java_datetime_pattern,
    java_regex,
    java_replacement,
    require_spark,
    to_spark_sql,
)
from shopkeeper.clean._text import NULL_MARKER_RE
from shopkeeper.cli import main
from shopkeeper.errors import ConfigError
from shopkeeper.warehouse import IngestRequest, Workspace, ingest


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("^[A-Z]{3}$", "EUR", True),
        ("^[A-Z]{3}$", "EUR\n", False),  # RE2's `$` is the end of the text, not before a \n
        ("a\\s+b", "a \t b", True),
        ("a\\s+b", "a\x0bb", False),  # RE2's \s has no vertical tab; Java's has
        ("\\bx\\b", "éx", True),  # RE2's \b is ASCII
        (NULL_MARKER_RE, " N/A\u3000", True),  # a whole-value match (regexp_full_match)
        (NULL_MARKER_RE, "nana", False),
    ],
)
def test_java_regex_matches_like_re2(pattern, text, found):
    # Python's re agrees with Java on these constructs; `\Z` is Java's `\z`.
    translated = java_regex(pattern).replace("\\z", "\\Z")
    translated = re.sub(r"\\x\{([0-9a-f]+)\}", lambda m: f"\\u{int(m[1], 16):04x}", translated)
    match = re.fullmatch if pattern == NULL_MARKER_RE else re.search
    assert bool(match(translated, text)) is found


def test_replacement_and_datetime_patterns():
    assert java_replacement("\\1.\\2 $") == "$1.$2 \\$"
    assert java_datetime_pattern("%d.%m.%Y %H:%M:%S") == "d'.'M'.'yyyy' 'H':'m':'s"
    with pytest.raises(ConfigError, match="%j"):
        java_datetime_pattern("%j")


def test_transpiled_functions():
    sql = to_spark_sql(
        "SELECT trim(x), epoch(ts), isfinite(v), timezone('Europe/London', CAST(t AS "
        "TIMESTAMP)), json_object('k', x), regexp_replace(x, '^(-?[0-9]+)\\.0+$', '\\1') FROM t"
    )
    assert "TRIM" not in sql.upper().replace("LTRIM", "")
    for name in ("UNIX_MICROS", "TO_UTC_TIMESTAMP", "NAMED_STRUCT", "ignoreNullFields", "'$1'"):
        assert name in sql
    with pytest.raises(ConfigError, match="anchored"):
        to_spark_sql("SELECT regexp_replace(x, 'a', 'b')")  # first match only: no Spark twin


def test_materialized_cte_is_plain_on_spark():
    sql = to_spark_sql("WITH r AS MATERIALIZED (SELECT 1 AS a) SELECT a FROM r")
    assert "MATERIALIZED" not in sql.upper()
    assert sql.startswith("WITH r AS (SELECT 1 AS a)")


def test_unknown_engine_is_a_config_error(tmp_path):
    src = tmp_path / "e.csv"
    src.write_text("user_id,item_id,event_type,ts\n1,2,view,2024-01-01\n")
    with pytest.raises(ConfigError, match="unknown engine"):
        ingest(Workspace(tmp_path / "ws"), IngestRequest(src, kind="events", engine="x"))  # type: ignore[arg-type]


def test_missing_java_or_pyspark_is_named(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda *a, **k: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    pytest.importorskip("pyspark")
    with pytest.raises(ConfigError, match="Java 17"):
        require_spark()
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(ImportError, match=r"shopkeeper\[spark\]"):
        require_spark()


def test_cli_offers_the_engine(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "--help"])
    assert exit_.value.code == 0
    assert "--engine [duckdb|spark]" in capsys.readouterr().out


def test_cli_without_java_exits_2(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pyspark")
    monkeypatch.setattr("shutil.which", lambda *a, **k: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    src = Path(tmp_path / "e.csv")
    src.write_text("user_id,item_id,event_type,ts\n1,2,view,2024-01-01\n")
    with pytest.raises(SystemExit) as exit_:
        main(["--home", str(tmp_path / "ws"), "ingest", str(src), "--kind", "events",
              "--engine", "spark"])  # fmt: skip
    assert exit_.value.code == 2
    assert "Java 17" in capsys.readouterr().err
