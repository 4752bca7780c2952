"""Run the cleaning SQL on Spark: SQLGlot transpiles it, a few rewrites keep DuckDB's meaning.

There is one set of transform definitions, the DuckDB SQL that `classify` builds. For
the Spark engine each statement is parsed as DuckDB SQL and rewritten where the two
engines name or mean things differently, then generated as Spark SQL:

* regexes: RE2's `$` (end of text), `\\s` (`[\\t\\n\\f\\r ]`) and ASCII `\\b` are spelled
  out for Java, whose `$` also matches before a final newline and whose `\\s` and `\\b`
  differ; replacement back-references `\\1` become `$1`;
* `regexp_full_match` becomes an anchored `RLIKE`; `trim` removes the Unicode space
  separators as DuckDB's does (Spark's removes only U+0020);
* `timezone(tz, naive)` is `to_utc_timestamp`, `epoch` keeps microseconds,
  `isfinite` is spelled out, `strlen` (bytes) is `octet_length`, `try_strptime`
  formats become Java patterns, and
  `json_object` is `to_json(named_struct(...))` keeping null fields; a `MATERIALIZED`
  CTE is a plain one (Spark plans each use itself);
* `nfkc` is a vectorized UDF (Arrow batches, `pyarrow.compute.utf8_normalize`), the
  same function DuckDB registers; `nfc_normalize`, which the cleaning SQL applies only to
  text without compatibility characters (`_text.nfkc_sql`), is that UDF too.

`SparkSqlRunner.execute` takes the statements `classify` issues (temp tables, temp
views, drops, settings) and runs them on a SparkSession; temp tables become
checkpointed temp views. PySpark is imported lazily (the `spark` extra).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

from shopkeeper.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_SPACES = "\\x{20}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{202f}\\x{205f}\\x{3000}"
"""What DuckDB's trim() removes (the Unicode space separators), as a Java class body."""
_WORD = "[0-9A-Za-z_]"
_BOUNDARY = f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))"
"""RE2's `\\b` (ASCII word characters) in Java."""
_STRPTIME = {
    "%Y": "yyyy",
    "%y": "yy",
    "%m": "M",
    "%d": "d",
    "%H": "H",
    "%M": "m",
    "%S": "s",
    "%f": "SSSSSS",
    "%z": "XXX",
    "%b": "MMM",
    "%B": "MMMM",
    "%p": "a",
    "%I": "h",
    "%%": "%",
}
"""DuckDB strptime specifiers as Java patterns; numbers accept one or two digits as DuckDB's."""


def require_spark() -> None:
    """Check that PySpark and a Java runtime are there for the Spark engine.

    Raises:
        ImportError: PySpark is not installed (the `spark` extra).
        ConfigError: no Java runtime (`java` on PATH or `JAVA_HOME`).
    """
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            'the spark engine needs PySpark: pip install "shopkeeper[spark]"'
        ) from exc
    home = os.environ.get("JAVA_HOME")
    java = shutil.which("java") or (home and shutil.which("java", path=f"{home}/bin"))
    if not java:
        raise ConfigError(
            "the spark engine needs a Java 17+ runtime: no `java` on PATH or in JAVA_HOME "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )


def java_regex(pattern: str) -> str:
    """An RE2 pattern (DuckDB's) as a Java pattern with the same matches.

    >>> java_regex("^[A-Z]{3}$")
    '^[A-Z]{3}\\\\z'
    >>> java_regex("a\\\\s+b")
    'a[\\\\t\\\\n\\\\f\\\\r ]+b'
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if not in_class and nxt == "s":
                out.append("[\\t\\n\\f\\r ]")
            elif not in_class and nxt == "b":
                out.append(_BOUNDARY)
            elif in_class and nxt == "s":
                out.append("\\t\\n\\f\\r ")
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if in_class:
            if ch == "]" and out and out[-1] not in ("[", "[^"):
                in_class = False
            out.append(ch)
        elif ch == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
                if i < len(pattern) and pattern[i] == "]":  # `[^]...]`: a literal `]`
                    out.append("\\]")
                    i += 1
                continue
            out.append("[")
        elif ch == "$":
            out.append("\\z")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def java_replacement(replacement: str) -> str:
    r"""An RE2 replacement (`\1` back-references) as a Java one (`$1`).

    >>> java_replacement("\\1 costs $5")
    '$1 costs \\$5'
    """
    out = re.sub(r"\$", r"\\$", replacement)
    return re.sub(r"\\([0-9])", r"$\1", out)


def java_datetime_pattern(fmt: str) -> str:
    """A DuckDB strptime format as a Java DateTimeFormatter pattern (literals quoted).

    >>> java_datetime_pattern("%m/%d/%Y %H:%M")
    "M'/'d'/'yyyy' 'H':'m"
    """
    out: list[str] = []
    literal = ""
    i = 0
    while i < len(fmt):
        spec = fmt[i : i + 2]
        if spec in _STRPTIME and spec != "%%":
            if literal:
                out.append("'" + literal.replace("'", "''") + "'")
                literal = ""
            out.append(_STRPTIME[spec])
            i += 2
        elif spec.startswith("%") and spec != "%%":
            raise ConfigError(f"strptime specifier {spec!r} has no Spark equivalent")
        else:
            literal += "%" if spec == "%%" else fmt[i]
            i += 2 if spec == "%%" else 1
    if literal:
        out.append("'" + literal.replace("'", "''") + "'")
    return "".join(out)


def _string(node: exp.Expr | None, what: str) -> str:
    if not isinstance(node, exp.Literal) or not node.is_string:
        raise ConfigError(f"the spark engine needs a constant {what}, got {node}")
    return str(node.this)


def _fn(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _rewrite(node: exp.Expr) -> exp.Expr:
    """One DuckDB construct as its Spark equivalent (see the module docstring)."""
    if isinstance(node, exp.RegexpReplace):
        pattern = _string(node.args.get("expression"), "regex")
        modifiers = node.args.get("modifiers")
        anchored = re.sub(r"^\(\?[a-z]+\)", "", pattern).startswith("^")
        if not (modifiers and "g" in _string(modifiers, "regex flag")) and not anchored:
            raise ConfigError(f"regexp_replace without 'g' needs an anchored regex: {pattern!r}")
        repl = _string(node.args.get("replacement"), "replacement")
        return exp.RegexpReplace(
            this=node.this,
            expression=exp.Literal.string(java_regex(pattern)),
            replacement=exp.Literal.string(java_replacement(repl)),
        )
    if isinstance(node, exp.RegexpLike):
        pattern = _string(node.args.get("expression"), "regex")
        return exp.RegexpLike(this=node.this, expression=exp.Literal.string(java_regex(pattern)))
    if isinstance(node, exp.RegexpFullMatch):
        pattern = _string(node.args.get("expression"), "regex")
        full = f"^(?:{java_regex(pattern)})\\z"
        return exp.RegexpLike(this=node.this, expression=exp.Literal.string(full))
    if isinstance(node, exp.Trim) and node.args.get("expression") is None:
        position = str(node.args.get("position") or "").upper()
        sides = {"LEADING": f"^[{_SPACES}]+", "TRAILING": f"[{_SPACES}]+\\z"}
        pattern = sides.get(position, f"^[{_SPACES}]+|[{_SPACES}]+\\z")
        return exp.RegexpReplace(
            this=node.this,
            expression=exp.Literal.string(pattern),
            replacement=exp.Literal.string(""),
        )
    if isinstance(node, exp.CTE) and node.args.get("materialized"):
        node.set("materialized", None)  # Spark plans each use of a CTE itself
        return node
    if isinstance(node, exp.TimeToUnix):
        micros = exp.cast(_fn("UNIX_MICROS", node.this), exp.DataType.Type.DOUBLE)
        return exp.Div(this=micros, expression=exp.Literal.number("1e6"))
    if isinstance(node, exp.JSONObject):
        pairs: list[exp.Expr] = []
        for kv in node.expressions:
            pairs += [kv.this, kv.expression]
        options = _fn("MAP", exp.Literal.string("ignoreNullFields"), exp.Literal.string("false"))
        return _fn("TO_JSON", _fn("NAMED_STRUCT", *pairs), options)
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        args = node.expressions
        if name == "timezone" and len(args) == 2:
            return _fn("TO_UTC_TIMESTAMP", args[1], args[0])
        if name == "nfc_normalize" and len(args) == 1:
            # Only on text without compatibility characters, where NFKC is NFC.
            return _fn("nfkc", args[0])
        if name == "strlen" and len(args) == 1:
            return _fn("OCTET_LENGTH", args[0])
        if name == "isfinite" and len(args) == 1:
            inf = exp.cast(exp.Literal.string("Infinity"), exp.DataType.Type.DOUBLE)
            return exp.LT(this=_fn("ABS", args[0]), expression=inf)
        if name in ("try_strptime", "strptime") and len(args) == 2:
            pattern = java_datetime_pattern(_string(args[1], "strptime format"))
            return _fn("TRY_TO_TIMESTAMP", args[0], exp.Literal.string(pattern))
    return node


def _rewrite_tree(node: exp.Expr) -> exp.Expr:
    """`_rewrite` bottom-up: children first, and each node once.

    (`Expression.transform` does not descend into the nodes it replaces.)
    """
    for child in list(node.iter_expressions()):
        new = _rewrite_tree(child)
        if new is not child:
            child.replace(new)
    return _rewrite(node)


def to_spark_sql(sql: str) -> str:
    """One DuckDB statement of the cleaning SQL as Spark SQL.

    >>> to_spark_sql("SELECT regexp_full_match(x, 'a|b') AS m FROM t")
    "SELECT x RLIKE '^(?:a|b)\\\\\\\\z' AS m FROM t"
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    return _rewrite_tree(tree).sql(dialect="spark")


def register_spark_functions(spark: SparkSession) -> None:
    """Register `nfkc` on a SparkSession: an Arrow UDF (batches in and out), as on DuckDB."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark.sql.pandas.functions import arrow_udf

    # A local function travels to the workers by value (they need no shopkeeper), and
    # PySpark reads its kind from type hints, which must be real types here.
    def nfkc(values: pa.Array) -> pa.Array:
        return pc.utf8_normalize(values, form="NFKC")

    nfkc.__annotations__ = {"values": pa.Array, "return": pa.Array}
    spark.udf.register("nfkc", arrow_udf(nfkc, "string"))  # type: ignore[call-overload]


class SparkSqlRunner:
    """Executes the statements `classify` issues on a SparkSession (see module docstring)."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.views: set[str] = set()
        """Temp views this runner created, dropped by `close`."""

    def execute(self, query: str, /) -> SparkSqlRunner:
        """Run one DuckDB statement: CREATE TEMP TABLE/VIEW, DROP, SET (ignored)."""
        tree = sqlglot.parse_one(query, read="duckdb")
        if isinstance(tree, exp.Set):
            return self  # DuckDB tuning (preserve_insertion_order)
        if isinstance(tree, exp.Drop):
            for table in tree.find_all(exp.Table):
                self.drop(table.name)
            return self
        if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query):
            name = tree.this.name
            kind = str(tree.args.get("kind") or "").upper()
            if tree.args.get("exists") and name in self.views:
                return self
            select = _rewrite_tree(tree.expression).sql(dialect="spark")
            df = self.spark.sql(select)
            if kind == "TABLE":
                df = df.localCheckpoint(eager=True)
            self.register(name, df)
            return self
        raise ConfigError(f"the spark engine cannot run this statement: {query[:200]}")

    def register(self, name: str, df: DataFrame) -> None:
        """Make `df` the temp view `name`."""
        df.createOrReplaceTempView(name)
        self.views.add(name)

    def drop(self, name: str) -> None:
        """Drop temp view `name` if this runner made it."""
        if name in self.views:
            self.spark.catalog.dropTempView(name)
            self.views.discard(name)

    def close(self) -> None:
        """Drop every temp view this runner made."""
        for name in list(self.views):
            self.drop(name)

    def __repr__(self) -> str:
        return f"SparkSqlRunner(views={sorted(self.views)})"


def spark_config(master: str, driver_memory: str, shuffle_partitions: int) -> dict[str, Any]:
    """Spark settings of a session the engine starts itself (UTC, ANSI on)."""
    return {
        "spark.master": master,
        "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }


def start_spark(master: str, driver_memory: str, shuffle_partitions: int) -> SparkSession:
    """A new (or the running) SparkSession with `spark_config`; workers run this Python."""
    from pyspark.sql import SparkSession

    # PySpark starts its workers with $PYSPARK_PYTHON (default: `python3` on PATH), which
    # may lack pyarrow; this interpreter has it.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("shopkeeper")
    for key, value in spark_config(master, driver_memory, shuffle_partitions).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
