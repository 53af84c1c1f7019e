"""Each row's text and labels, checked and normalised to ``text`` (str) and ``labels`` (list[str]).

A label cell holds a list of labels, one path string such as ``"comp > comp.sys > comp.sys.mac.hardware"`` (split on
the label separator) or, typically in CSV, a JSON list string ``'["comp", "comp.sys"]'``; the HiAGM/HGCLR layout has
a ``doc_token`` list of tokens and a ``doc_label`` list of labels. With one label column per level (``label_level_1``,
``label_level_2``, … as in ``web_of_science``/``WOS46985``), integer level values become path-qualified ids
(``"3"``, ``"3/7"``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence

from datasets import Dataset, Features, List, Value

from .columns import class_names, resolve_columns
from .fingerprint import fingerprint

logger = logging.getLogger(__name__)

RAW_FEATURES = Features({"text": Value("string"), "labels": List(Value("string"))})
ID_COLUMN = "id"  # carried through when present


def _is_missing(value) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text_value(value, column: str, fail: Callable[[str], None], allow_empty: bool = False) -> str:
    if isinstance(value, (list, tuple)):
        value = " ".join(str(token) for token in value if token is not None)
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        value = ""
    elif not isinstance(value, str):
        value = str(value)
    if not value.strip() and not allow_empty:
        fail(f"empty text (column {column!r})")
    return value


def _scalar_label(value, names: list[str] | None, fail: Callable[[str], None]) -> str:
    if isinstance(value, str):
        label = value.strip()
        if not label:
            fail("empty label")
        return label
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f"unsupported label value {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            fail(f"unsupported label value {value!r}")
        value = int(value)
    if names is not None and 0 <= value < len(names):
        return names[value]
    return str(value)


def _label_list(value, separator: str | None, names: list[str] | None, fail: Callable[[str], None]) -> list[str]:
    """Labels of one cell: a list, a JSON list string, a path string or a single scalar."""
    if _is_missing(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as err:
                fail(f"labels look like a JSON list but are not valid JSON ({err.msg}): {value!r}")
            if not isinstance(parsed, list):
                fail(f"labels are not a JSON list: {value!r}")
            value = parsed
        else:
            parts = [part.strip() for part in text.split(separator)] if separator else [text]
            if any(not part for part in parts):
                fail(f"empty label in path {value!r}")
            return parts
    if isinstance(value, (list, tuple)):
        labels = []
        for item in value:
            if isinstance(item, (list, tuple, dict)):
                fail(f"nested label value {item!r}")
            if item is None:
                fail("null label in the label list")
            labels.append(_scalar_label(item, names, fail))
        return labels
    return [_scalar_label(value, names, fail)]


def _level_path(values: Sequence, columns: Sequence[str], fail: Callable[[str], None]) -> list[str]:
    """Root-to-node path from one value per level; integer values become path-qualified ids ("3", "3/7")."""
    path: list[str] = []
    for level, (value, column) in enumerate(zip(values, columns)):
        if _is_missing(value):
            later = [c for v, c in zip(values[level + 1 :], columns[level + 1 :]) if not _is_missing(v)]
            if later:
                fail(f"column {column!r} is empty but {later[0]!r} is set")
            break
        if isinstance(value, str):
            path.append(value.strip())
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()
        ):
            fail(f"unsupported value {value!r} in column {column!r}")
        else:
            path.append(f"{path[-1]}/{int(value)}" if path else str(int(value)))
    return path


def _holds_objects(feature) -> bool:
    """Whether a column's feature is, or lists, JSON objects (Arrow structs)."""
    if isinstance(feature, dict):
        return True
    inner = feature[0] if isinstance(feature, list) and feature else getattr(feature, "feature", None)
    return inner is not None and _holds_objects(inner)


def normalise(
    ds: Dataset,
    source: str,
    text_column: str | None,
    label_column: str | None,
    separator: str | None,
    skip_empty_texts: bool = False,
    allow_empty_texts: bool = False,
    labels_optional: bool = False,
) -> Dataset:
    """Map a loaded split to ``text``/``labels`` (and ``id`` when present), validating every row. With
    `labels_optional` (documents to classify), a split without a label column becomes ``text`` (and ``id``) only."""
    text_col, label_cols, per_level = resolve_columns(ds.column_names, source, text_column, label_column,
                                                      labels_optional)
    for column in (text_col, *label_cols):  # JSON objects become Arrow structs, which reading may fail on
        if _holds_objects(ds.features[column]):
            raise ValueError(f"{source}: column {column!r} holds JSON objects; give a string"
                             + (" or a list of labels" if column in label_cols else ""))
    keep_id = ID_COLUMN in ds.column_names and ID_COLUMN not in (text_col, *label_cols)
    features = RAW_FEATURES if label_cols else Features({"text": RAW_FEATURES["text"]})
    if keep_id:
        features = Features({**features, ID_COLUMN: ds.features[ID_COLUMN]})
    names = None if per_level or not label_cols else class_names(ds.features[label_cols[0]])
    empty_labels = f"columns {', '.join(label_cols)}" if per_level else f"column {(label_cols or [''])[0]!r}"

    skipped = []

    def convert(batch: dict, indices: list[int]) -> dict:
        texts, labels, ids = [], [], []
        text_values = batch[text_col]
        label_values = [batch[column] for column in label_cols]
        for j, index in enumerate(indices):

            def fail(problem: str, row: int = index + 1) -> None:
                raise ValueError(f"{source}: row {row}: {problem}") from None

            if skip_empty_texts and not allow_empty_texts and _is_missing(text_values[j]):
                skipped.append(index + 1)
                continue
            texts.append(_text_value(text_values[j], text_col, fail, allow_empty_texts))
            if keep_id:
                ids.append(batch[ID_COLUMN][j])
            if not label_cols:
                continue
            if per_level:
                row_labels = _level_path([values[j] for values in label_values], label_cols, fail)
            else:
                row_labels = _label_list(label_values[0][j], separator, names, fail)
            if not row_labels:
                fail(f"no labels (empty {empty_labels})")
            labels.append(row_labels)
        return {"text": texts, **({"labels": labels} if label_cols else {}), **({ID_COLUMN: ids} if keep_id else {})}

    key = fingerprint(
        "normalise", ds._fingerprint, source, text_col, label_cols, separator, names, skip_empty_texts,
        allow_empty_texts, labels_optional
    )
    normalised = ds.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=ds.column_names,
        features=features,
        load_from_cache_file=False,  # computed afresh, as the files are read afresh
        new_fingerprint=key,
        desc="Reading texts and labels",
    )
    if skipped:
        logger.warning("%s: skipped %d rows with empty text (rows %s)", source, len(skipped), skipped[:10])
    return normalised
