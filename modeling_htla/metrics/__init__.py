"""Evaluation metrics shipped with htla.

`htc_f1/htc_f1.py` is an `evaluate` metric script (Micro/Macro-F1, per-level
scores, P1..P5 frequency-group Macro-F1, hierarchical P/R/F and consistency rate
for hierarchical multi-label classification). Load it with `load_htc_metric()`,
or with `evaluate.load(HTC_METRIC_PATH)`.

Loading works offline: `evaluate.load` on a local folder copies the script into
the dynamic-modules cache and imports it without any Hub request, and
`load_htc_metric` additionally passes a `DownloadConfig(local_files_only=True)`
so that nothing downloads even if a future `evaluate` tried to.

`htc_scores` is the same computation on in-memory arrays, for callers that already hold them (the Trainer's
`compute_metrics`): `evaluate` stores its inputs as Python lists first, too much for wide taxonomies. `htc_counts`
and `scores_from_counts` are its two halves (`htc_decisions` the decisions it counts, `check_parents` the tree), for callers that never hold the whole `[N, L]` arrays: counts of chunks
of documents add up, and the scores of their sum are those of `htc_scores` on all the documents.
"""

import os

from .htc_f1.htc_f1 import check_parents, htc_counts, htc_decisions, htc_scores, scores_from_counts

HTC_METRIC_PATH: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "htc_f1")
"""Absolute path of the folder holding the `htc_f1` evaluate metric script."""


def load_htc_metric(**kwargs):
    """Return `evaluate.load(HTC_METRIC_PATH, **kwargs)`, without network access.

    Keyword arguments are forwarded to `evaluate.load` (e.g. `experiment_id`,
    `cache_dir`, `keep_in_memory`, `num_process`/`process_id` for distributed
    evaluation). Unless a `download_config` is given, a local-files-only one is used.
    """
    import evaluate
    from evaluate.utils.file_utils import DownloadConfig

    kwargs.setdefault("download_config", DownloadConfig(local_files_only=True))
    return evaluate.load(HTC_METRIC_PATH, **kwargs)


__all__ = [
    "HTC_METRIC_PATH", "check_parents", "htc_counts", "htc_decisions", "htc_scores", "load_htc_metric",
    "scores_from_counts",
]
