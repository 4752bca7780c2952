"""Recommendation: evaluation protocol, splits, metrics, baselines, SASRec, training.

Needs numpy and scipy (the `ml` extra); the main model, SASRec (`sasrec` in `SCORERS`,
module `_sasrec`), also needs torch and is imported only when asked for. Everything ranks
the full catalog; reports are stored as versioned `rec_report` assets and trained models
as `rec_model` assets, with lineage to the events (and embeddings) they came from.
"""

from __future__ import annotations

from shopkeeper.rec._als import ALSConfig, ALSScorer
from shopkeeper.rec._baselines import (
    EASEConfig,
    EASEScorer,
    ItemKNNConfig,
    ItemKNNScorer,
    PopularityConfig,
    PopularityScorer,
    RandomConfig,
    RandomScorer,
)
from shopkeeper.rec._compression import (
    CompressibleScorer,
    evaluate_compression,
    parse_compression,
    parse_compressions,
)
from shopkeeper.rec._content import ContentConfig, ContentScorer
from shopkeeper.rec._data import Histories, Interactions, k_core_mask, read_interactions
from shopkeeper.rec._metrics import ranking_metrics, self_information, top_k
from shopkeeper.rec._protocol import EvalConfig, evaluate_scorer, make_split, targets_of
from shopkeeper.rec._recommend import read_user_ids, recommend, round_scores
from shopkeeper.rec._report import (
    BASELINES,
    REPORT_ASSET,
    read_report,
    render_markdown,
    run_evaluation,
)
from shopkeeper.rec._scorer import (
    SCORERS,
    RecScorer,
    TrainingData,
    create_scorer,
    get_scorer_class,
)
from shopkeeper.rec._splits import Split, leave_one_out, temporal_split, unseen_targets
from shopkeeper.rec._train import (
    DEFAULT_REC_MODEL,
    REC_MODEL_ASSET,
    RecModel,
    load_rec_model,
    train_rec,
)
from shopkeeper.rec._train_ddp import export_ddp, import_ddp

__all__ = [
    "BASELINES",
    "DEFAULT_REC_MODEL",
    "REC_MODEL_ASSET",
    "REPORT_ASSET",
    "SCORERS",
    "ALSConfig",
    "ALSScorer",
    "CompressibleScorer",
    "ContentConfig",
    "ContentScorer",
    "EASEConfig",
    "EASEScorer",
    "EvalConfig",
    "Histories",
    "Interactions",
    "ItemKNNConfig",
    "ItemKNNScorer",
    "PopularityConfig",
    "PopularityScorer",
    "RandomConfig",
    "RandomScorer",
    "RecModel",
    "RecScorer",
    "Split",
    "TrainingData",
    "create_scorer",
    "evaluate_compression",
    "evaluate_scorer",
    "export_ddp",
    "get_scorer_class",
    "import_ddp",
    "k_core_mask",
    "leave_one_out",
    "load_rec_model",
    "make_split",
    "parse_compression",
    "parse_compressions",
    "ranking_metrics",
    "read_interactions",
    "read_report",
    "read_user_ids",
    "recommend",
    "render_markdown",
    "round_scores",
    "run_evaluation",
    "self_information",
    "targets_of",
    "temporal_split",
    "top_k",
    "train_rec",
    "unseen_targets",
]
