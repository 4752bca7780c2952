"""`shopkeeper search` (one query, a batch file, or reranking) and `evaluate search`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import click
from rich import box
from rich.table import Table

from shopkeeper.cli._app import F, State, cli, console, emit_json, json_option
from shopkeeper.cli._features import titles
from shopkeeper.cli._rec import evaluate
from shopkeeper.errors import ConfigError
from shopkeeper.search._evaluate import SEARCH_MODELS
from shopkeeper.search._searcher import FACET_POOL, SearchModel

if TYPE_CHECKING:
    from collections.abc import Callable

    from shopkeeper.search import Searcher, SearchFilters, SearchPage

SEARCH_MODEL_CHOICES: tuple[str, ...] = get_args(SearchModel)
EVAL_MODEL_CHOICES = (*SEARCH_MODELS, "all")


def read_tsv(path: Path, what: str) -> list[tuple[str, str]]:
    """Rows of a two-column TSV (`id<TAB>value`); a header row `query_id` is skipped.

    Raises:
        ConfigError: the file cannot be read or a line has no tab.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file: {exc}", path=str(path)) from exc
    rows: list[tuple[str, str]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        a, tab, b = line.partition("\t")
        if not tab:
            raise ConfigError(f"line {n} of the {what} file has no tab", path=str(path))
        if n == 1 and a.strip() == "query_id":
            continue
        rows.append((a.strip(), b.strip()))
    return rows


def _open(state: State, model: str, spelling: bool) -> Searcher:
    from shopkeeper.search import Searcher

    return Searcher.open(state.workspace, model, spelling=spelling)  # type: ignore[arg-type]


def _file_option(flag: str, help_: str) -> Callable[[F], F]:
    """An optional input file `--NAME`, passed as `NAME_file`."""
    return click.option(
        flag,
        f"{flag.lstrip('-')}_file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help=help_,
    )


def _filters(
    category: str | None, brand: str | None, min_price: float | None, max_price: float | None
) -> SearchFilters | None:
    """The filter options as `SearchFilters` (None: no filter; see `parse_filters`)."""
    from shopkeeper.search import parse_filters

    return parse_filters(category, brand, min_price, max_price)


def _filter_options(f: F) -> F:
    """`--category`, `--brand`, `--min-price`, `--max-price`."""
    price = click.FloatRange(min=0)
    for opt in reversed(
        [
            click.option(
                "--category", default=None, help="Only this category path (A > B) and below."
            ),
            click.option("--brand", default=None, help="Only this brand (case-insensitive)."),
            click.option("--min-price", type=price, default=None, help="Lowest price, inclusive."),
            click.option("--max-price", type=price, default=None, help="Highest price, inclusive."),
        ]
    ):
        f = opt(f)
    return f


@cli.command("search")
@click.argument("query", required=False)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True)
@_file_option("--queries", "TSV of query_id<TAB>query: prints {query_id: [{item_id, score}, ...]}.")
@_file_option(
    "--candidates", "TSV of query_id<TAB>item_id (with --queries): only rerank these items."
)
@click.option(
    "--model",
    type=click.Choice(SEARCH_MODEL_CHOICES),
    default="auto",
    show_default=True,
    help="auto: the `train search` ranker when it beat its first stage, else hybrid when "
    "`features build` has made item vectors, else bm25.",
)
@click.option("--no-spelling", is_flag=True, help="Do not correct unknown query words.")
@_filter_options
@click.option(
    "--facets",
    is_flag=True,
    help=f"Also count categories, brands and price buckets of the top {FACET_POOL} matches: "
    'prints {"results": [...], "facets": {...}} per query.',
)
@click.option(
    "--user",
    default=None,
    help="Personalize for this user (the id as the source gave it); hits then carry "
    "`stages` and `personalized`.",
)
@click.option(
    "--personalization-weight",
    type=click.FloatRange(0.0, 1.0),
    default=0.3,
    show_default=True,
    help="The user's share of the final score (with --user).",
)
@json_option
@click.pass_obj
def search_cmd(
    state: State,
    query: str | None,
    k: int,
    queries_file: Path | None,
    candidates_file: Path | None,
    model: str,
    no_spelling: bool,
    category: str | None,
    brand: str | None,
    min_price: float | None,
    max_price: float | None,
    facets: bool,
    user: str | None,
    personalization_weight: float,
) -> None:
    """Search the catalogue: one QUERY, or a batch from --queries (best first), optionally
    filtered, faceted and personalized."""
    from shopkeeper.search import PersonalizationConfig

    if (query is None) == (queries_file is None):
        raise click.UsageError("give either QUERY or --queries FILE")
    if candidates_file is not None and queries_file is None:
        raise click.UsageError("--candidates needs --queries")
    filters = _filters(category, brand, min_price, max_price)
    opts: dict[str, Any] = {
        "filters": filters,
        "user": user.strip() if user is not None else None,
        "personalization": PersonalizationConfig(weight=personalization_weight),
    }
    searcher = _open(state, model, not no_spelling)
    if query is not None:
        page = searcher.pages([query], k, facets=facets, **opts)[0]
        if state.json:
            emit_json(_page_json(page, facets))
        else:
            _render(state, searcher, query, page)
        return
    assert queries_file is not None
    pairs = read_tsv(queries_file, "queries")
    qids, texts = [q for q, _ in pairs], [t for _, t in pairs]
    if candidates_file is None:
        pages = searcher.pages(texts, k, facets=facets, **opts)
    else:
        cand: dict[str, list[str]] = {}
        for qid, item in read_tsv(candidates_file, "candidates"):
            cand.setdefault(qid, []).append(item)
        pages = searcher.rerank_pages(texts, [cand.get(q, []) for q in qids], k, **opts)
    emit_json({q: _page_json(p, facets) for q, p in zip(qids, pages, strict=True)})


def _page_json(page: SearchPage, facets: bool) -> Any:
    """The hits (the contract's list), or `{"results", "facets"}` with --facets."""
    return {"results": page.hits, "facets": page.facets} if facets else page.hits


def _render(state: State, searcher: Searcher, query: str, page: SearchPage) -> None:
    hits = page.hits
    names = titles(state, [h["item_id"] for h in hits])
    t = Table(title=f"{searcher.name}: {query}", box=box.SIMPLE_HEAD, pad_edge=False)
    staged = bool(hits) and "stages" in hits[0]
    cols = ["#", "item_id", "score", *(["retrieval", "user"] if staged else []), "title"]
    for col in cols:
        t.add_column(col, justify="left" if col in ("item_id", "title") else "right")
    for i, h in enumerate(hits, 1):
        stages = h.get("stages", {})
        extra = [f"{v:.4f}" if v is not None else "-" for v in stages.values()] if staged else []
        t.add_row(str(i), h["item_id"], f"{h['score']:.4f}", *extra, names.get(h["item_id"], ""))
    c = console()
    c.print(t)
    if hits and hits[0].get("personalized") is False:
        c.print("not personalized (see the log for why)", highlight=False)
    if page.facets is not None:
        f = page.facets
        c.print(f"facets over the top {f['items']} matches:", highlight=False)
        for name in ("category", "brand"):
            c.print(f"  {name}: " + _counts(f[name]), highlight=False)
        if "subcategory" in f:
            sub = f["subcategory"]
            c.print(f"  under {sub['parent']}: " + _counts(sub["values"]), highlight=False)
        price = [
            (f"{b['min']:g}-{b['max']:g}" if b["max"] is not None else f"{b['min']:g}+")
            if b["min"] is not None
            else "no price"
            for b in f["price"]
        ]
        c.print(
            "  price: "
            + ", ".join(f"{p} ({b['count']})" for p, b in zip(price, f["price"], strict=True)),
            highlight=False,
        )


def _counts(values: list[dict[str, Any]]) -> str:
    return ", ".join(f"{v['value']} ({v['count']})" for v in values[:10]) or "-"


def write_per_query(rows: list[dict[str, Any]], path: Path) -> None:
    """Per-query figures as CSV (by suffix `.csv`) or JSON (anything else)."""
    if path.suffix.lower() == ".csv":
        cols = list(dict.fromkeys(c for r in rows for c in r))
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


def render_search_report(report: dict[str, Any]) -> None:
    """Print a search evaluation as a Rich table."""
    c = console()
    d, p = report["data"], report["protocol"]
    c.print(
        f"{d['items']:,} items; queries train/validation/test "
        f"{d['queries']['train']:,}/{d['queries']['validation']:,}/{d['queries']['test']:,} "
        f"(query-disjoint, seed {p['seed']}); {d['evaluated_queries']:,} test queries",
        highlight=False,
    )
    k, rk = p["k"], p["recall_k"]
    t = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    cols = [f"nDCG@{k}", f"Recall@{rk}", f"MRR@{k}", f"rerank nDCG@{k}", f"rerank MRR@{k}"]
    graded = any("rmse" in m for m in report["models"])  # a column only when a ranker ran
    for col in ("model", *cols, *(["RMSE"] if graded else []), "q/s"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m in report["models"]:
        f, r = m["full"], m["rerank"]
        vals = [f[f"nDCG@{k}"], f[f"Recall@{rk}"], f[f"MRR@{k}"], r[f"nDCG@{k}"], r[f"MRR@{k}"]]
        qps, err = m["queries_per_second"], m.get("rmse")
        t.add_row(
            m["model"],
            *(f"{v:.4f}" if v is not None else "-" for v in vals),
            *([f"{err:.4f}" if err is not None else "-"] if graded else []),
            f"{qps:,.0f}" if qps else "-",
        )
    c.print(t)
    if "fusion" in report:
        ch = report["fusion"]["chosen"]
        c.print(
            f"hybrid: {ch['method']} fusion, BM25 share {ch['weight']:.1f} "
            f"(tuned on {report['fusion']['validation_queries']:,} validation queries)",
            highlight=False,
        )
    c.print(
        f"RMSE of predicting the train mean grade: {report['rmse']['constant_train_mean']:.4f} "
        "(only the ranker predicts grades)",
        highlight=False,
    )


@evaluate.command("search")
@click.option(
    "--model",
    "models",
    type=click.Choice(EVAL_MODEL_CHOICES),
    multiple=True,
    help="A model (repeatable; default: random, bm25, dense + hybrid when item vectors exist, "
    "ranker + ranker-fp32 when `train search` has stored one, ltr when `train search --model "
    "ltr` has).",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Split and tie seed.")
@click.option("--max-queries", type=click.IntRange(min=1), default=None, help="Sample queries.")
@click.option(
    "--per-query",
    "per_query_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write every test query's figures to FILE (.csv or .json).",
)
@json_option
@click.pass_obj
def search_eval_cmd(
    state: State,
    models: tuple[str, ...],
    seed: int | None,
    max_queries: int | None,
    per_query_file: Path | None,
) -> None:
    """Evaluate search on judged queries: full-catalogue and rerank protocols."""
    from shopkeeper.search import SearchEvalConfig, evaluate_search
    from shopkeeper.search._ltr import has_ltr
    from shopkeeper.search._open import has_dense
    from shopkeeper.search._ranker_asset import has_ranker
    from shopkeeper.search._tuned_dense import has_tuned_dense

    chosen: list[Any] = list(dict.fromkeys(models))
    if not chosen or "all" in chosen:
        dense = has_dense(state.workspace)
        ranker = ["ranker", "ranker-fp32"] if has_ranker(state.workspace) else []
        ranker += ["ltr"] if has_ltr(state.workspace) else []
        tuned = ["dense-tuned", "hybrid-tuned"] if has_tuned_dense(state.workspace) else []
        chosen = ["random", "bm25", *(["dense", "hybrid"] if dense else []), *tuned, *ranker]
    given = {"seed": seed, "max_queries": max_queries}
    cfg = SearchEvalConfig.model_validate({k: v for k, v in given.items() if v is not None})
    report = evaluate_search(
        state.workspace,
        chosen,
        cfg,
        per_query=per_query_file is not None,
    )
    if per_query_file is not None:
        write_per_query(report.pop("per_query"), per_query_file)
        report["per_query_file"] = str(per_query_file)
    if state.json:
        emit_json(report)
    else:
        render_search_report(report)
