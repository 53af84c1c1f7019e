"""Which columns of a split hold the text and the labels: named by the user, or found among the usual names."""

from __future__ import annotations

import re
from collections.abc import Sequence

from datasets import ClassLabel

TEXT_COLUMNS = ("text", "input_data", "doc_token", "sentence", "content")
LABEL_COLUMNS = ("labels", "label_path", "doc_label", "label")
LEVEL_COLUMN_PATTERN = re.compile(r"^label_level_(\d+)$")


def resolve_columns(
    columns: Sequence[str], source: str, text_column: str | None, label_column: str | None,
    labels_optional: bool = False,
) -> tuple[str, list[str], bool]:
    """Pick (text column, label columns, per-level mode) explicitly or by auto-detection. With `labels_optional`
    (documents to classify), no label column found is no label column (`[]`) rather than an error."""
    available = ", ".join(columns)

    def check(column: str, role: str) -> str:
        if column not in columns:
            raise ValueError(f"{source}: {role} column {column!r} not found (available: {available})")
        return column

    if text_column:
        text = check(text_column, "text")
    else:
        text = next((c for c in TEXT_COLUMNS if c in columns), None)
        if text is None:
            raise ValueError(
                f"{source}: no text column found (looked for {', '.join(TEXT_COLUMNS)}; available: {available}); "
                "pass --text_column"
            )
    if label_column:
        names = [name.strip() for name in label_column.split(",") if name.strip()]
        if not names:
            raise ValueError(f"{source}: empty label column name {label_column!r}")
        return text, [check(name, "label") for name in names], len(names) > 1
    levels = sorted(
        (int(m.group(1)), c) for c in columns if c != text and (m := LEVEL_COLUMN_PATTERN.match(c))
    )
    if levels:
        return text, [c for _, c in levels], True
    label = next((c for c in LABEL_COLUMNS if c in columns and c != text), None)
    if label is None and labels_optional:
        return text, [], False
    if label is None:
        raise ValueError(
            f"{source}: no label column found (looked for {', '.join(LABEL_COLUMNS)} or label_level_<k>; "
            f"available: {available}); pass --label_column"
        )
    return text, [label], False


def class_names(feature) -> list[str] | None:
    """Class names of a ClassLabel column or a list-of-ClassLabel column, else None."""
    if isinstance(feature, ClassLabel):
        return feature.names
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return inner.names
    return None
