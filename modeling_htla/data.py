"""Data loading for hierarchical text classification: raw splits, the label taxonomy and multi-hot targets.

Everything is read through the `datasets` library and normalised to splits with the columns ``text`` (str) and
``labels`` (list[str], a root-to-node path or a label set), plus the source's ``id`` column when it has one (so
predictions can be joined back to the documents). Supported sources:

* JSON Lines / JSON / CSV files (``.jsonl`` / ``.json`` / ``.csv``) with a text column and a label column
  holding a list of labels, one path string such as ``"comp > comp.sys > comp.sys.mac.hardware"`` (split on
  ``label_separator``) or, typically in CSV, a JSON list string ``'["comp", "comp.sys"]'``;
* the HiAGM/HGCLR JSON-lines layout (``doc_token`` list of tokens, ``doc_label`` list of labels);
* Hub datasets or files with one label column per level (``label_level_1``, ``label_level_2``, … as in
  ``web_of_science``/``WOS46985``); integer level values become path-qualified ids (``"3"``, ``"3/7"``);
* the embedded ICD-10-CM code tree from the ``simple_icd_10_cm`` package (`load_icd10cm`).

Bad input raises `ValueError` with one line naming the file (or dataset), the 1-based row where it applies
and the problem; no pyarrow/datasets traceback is let through for those cases.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from .taxonomy import Taxonomy

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
TEXT_COLUMNS = ("text", "input_data", "doc_token", "sentence", "content")
LABEL_COLUMNS = ("labels", "label_path", "doc_label", "label")
LEVEL_COLUMN_PATTERN = re.compile(r"^label_level_(\d+)$")
RAW_FEATURES = Features({"text": Value("string"), "labels": List(Value("string"))})
ID_COLUMN = "id"  # carried through when present

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv"}
# CSV: only an empty cell is missing; "NA", "null", "None" … stay strings (they can be real texts or labels).
_BUILDER_KWARGS = {"json": {}, "csv": {"keep_default_na": False, "na_values": [""]}}
_HUB_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}


# ---------------------------------------------------------------------------------------------- raw datasets


def load_raw_datasets(
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    label_separator: str = " > ",
    cache_dir: str | None = None,
    skip_empty_texts: bool = False,
) -> DatasetDict:
    """Load local files or a Hub dataset into a `DatasetDict` of ``text``/``labels`` splits.

    Only the splits that are given (files) or present (Hub: ``train``, ``validation``/``valid``/``dev``,
    ``test``) are returned. `text_column`/`label_column` default to auto-detection; `label_column` may also
    name several per-level columns separated by commas (``"level1,level2"``). Local files are always re-read
    (a fresh temporary cache per call, data kept in memory); `cache_dir` is used for Hub downloads.
    An empty or whitespace-only text is an error in train and validation unless `skip_empty_texts`, which drops
    such rows with a warning; in the test split it is kept, since a document to predict may well be empty.
    """
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    files = {split: path for split, path in files.items() if path is not None}
    if dataset_name and files:
        given = ", ".join(map(str, files.values()))
        raise ValueError(f"give either dataset_name ({dataset_name!r}) or data files ({given}), not both")
    if not dataset_name and not files:
        raise ValueError("no data: pass train_file/validation_file/test_file or dataset_name")

    def normalise(ds: Dataset, source: str, split: str) -> Dataset:
        return _normalise(
            ds, source, text_column, label_column, label_separator, skip_empty_texts, allow_empty_texts=split == "test"
        )

    if dataset_name:
        loaded = _load_hub(dataset_name, dataset_config_name, cache_dir)
        return DatasetDict({split: normalise(ds, source, split) for split, (ds, source) in loaded.items()})
    splits = {}
    for split, path in files.items():
        try:
            splits[split] = normalise(_load_file(path), str(path), split)
        except UnicodeDecodeError as err:  # the JSON reader can defer UTF-8 validation to the first read
            raise ValueError(_diagnose_file(Path(path), str(path), "json", err)) from None
    return DatasetDict(splits)


def _load_file(path: str | Path) -> Dataset:
    """Read one local file with the `datasets` json/csv builder (in memory, never from a stale cache)."""
    file = Path(path)
    if not file.exists():
        raise ValueError(f"{path}: file not found")
    if not file.is_file():
        raise ValueError(f"{path}: not a regular file")
    builder = _BUILDERS.get(file.suffix.lower())
    if builder is None:
        raise ValueError(f"{path}: unsupported file type {file.suffix!r} (expected one of {', '.join(_BUILDERS)})")
    try:
        with open(file, "rb"):
            pass
    except OSError as err:
        raise ValueError(f"{path}: cannot read file ({err.strerror})") from None
    with tempfile.TemporaryDirectory(prefix="htla-data-") as cache:
        try:
            ds = datasets.load_dataset(
                builder,
                data_files={"train": str(file)},
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
                **_BUILDER_KWARGS[builder],
            )
        except Exception as err:  # noqa: BLE001 - every reader failure becomes one clear line
            raise ValueError(_diagnose_file(file, str(path), builder, err)) from None
    if len(ds) == 0:
        raise ValueError(f"{path}: empty split (0 rows)")
    return ds


def _diagnose_file(file: Path, source: str, builder: str, err: BaseException) -> str:
    """Explain why the `datasets` reader failed, by re-reading the file with the standard library."""
    try:
        raw = file.read_bytes()
    except OSError as os_err:
        return f"{source}: cannot read file ({os_err.strerror})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as dec:
        line = raw.count(b"\n", 0, dec.start) + 1
        return f"{source}: not UTF-8 text (invalid byte 0x{raw[dec.start]:02x} on line {line})"
    if not text.strip():
        return f"{source}: empty split (0 rows, the file is empty)"
    if builder == "json":
        problem = _diagnose_json(text)
        if problem:
            return f"{source}: {problem}"
        return f"{source}: cannot read as JSON ({_root_message(err)})"
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        return f"{source}: empty split (0 rows, only a header line)"
    return f"{source}: cannot read as CSV ({_root_message(err)})"


def _diagnose_json(text: str) -> str | None:
    """The first problem of a JSON Lines or JSON-list text, or None when none is found."""
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            return f"line {err.lineno}: invalid JSON ({err.msg} at column {err.colno})"
        if not records:
            return "empty split (0 rows, an empty JSON list)"
        for row, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                return f"row {row}: expected a JSON object, got {type(record).__name__}"
        return _diagnose_mixed_types(((row, record) for row, record in enumerate(records, start=1)), "row")
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if lineno == 1 and text.lstrip().startswith("{") and "\n" in text.strip():
                try:  # a pretty-printed single object rather than JSON Lines
                    json.loads(text)
                    return "a single JSON object; expected JSON Lines or a JSON list of objects"
                except json.JSONDecodeError:
                    pass
            return f"line {lineno}: invalid JSON ({err.msg} at column {err.colno})"
        if not isinstance(record, dict):
            return f"line {lineno}: expected a JSON object, got {type(record).__name__}"
        records.append((lineno, record))
    return _diagnose_mixed_types(records, "line")


def _diagnose_mixed_types(records, unit: str) -> str | None:
    """Report a column whose values change type (e.g. a list on one row, a string on another)."""
    seen: dict[str, tuple[str, int]] = {}
    for row, record in records:
        for key, value in record.items():
            if value is None:
                continue
            kind = (
                "list" if isinstance(value, list) else "object" if isinstance(value, dict)
                else "string" if isinstance(value, str) else "boolean" if isinstance(value, bool) else "number"
            )
            first = seen.setdefault(key, (kind, row))
            if first[0] != kind:
                return (
                    f"{unit} {row}: column {key!r} holds a {kind} but a {first[0]} on {unit} {first[1]} "
                    "(use one type per column)"
                )
    return None


def _root_message(err: BaseException) -> str:
    """First line of the innermost exception message (the actual reader error)."""
    messages = []
    while err is not None:
        text = str(err).strip()
        if text:
            messages.append(f"{type(err).__name__}: {text.splitlines()[0]}")
        err = err.__cause__
    return messages[-1] if messages else "unknown error"


def _load_hub(name: str, config: str | None, cache_dir: str | None) -> dict[str, tuple[Dataset, str]]:
    """Load a Hub dataset and map its split names onto train/validation/test."""
    label = f"dataset {name!r}" + (f" (config {config!r})" if config else "")
    try:
        loaded = datasets.load_dataset(name, config, cache_dir=cache_dir)
    except Exception as err:  # noqa: BLE001 - network, missing dataset, bad config …
        raise ValueError(f"{label}: cannot load ({_root_message(err)})") from None
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    splits: dict[str, tuple[Dataset, str]] = {}
    for split_name, ds in loaded.items():
        split = _HUB_SPLIT_ALIASES.get(split_name.lower())
        if split is None or split in splits:
            continue
        source = f"{label} split {split_name!r}"
        if len(ds) == 0:
            raise ValueError(f"{source}: empty split (0 rows)")
        splits[split] = (ds, source)
    if not splits:
        raise ValueError(f"{label}: no train/validation/test split (available: {', '.join(loaded)})")
    return {split: splits[split] for split in SPLITS if split in splits}


# ---------------------------------------------------------------------------------------------- normalisation


def _resolve_columns(
    columns: Sequence[str], source: str, text_column: str | None, label_column: str | None
) -> tuple[str, list[str], bool]:
    """Pick (text column, label columns, per-level mode) explicitly or by auto-detection."""
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
    if label is None:
        raise ValueError(
            f"{source}: no label column found (looked for {', '.join(LABEL_COLUMNS)} or label_level_<k>; "
            f"available: {available}); pass --label_column"
        )
    return text, [label], False


def _class_names(feature) -> list[str] | None:
    """Class names of a ClassLabel column or a list-of-ClassLabel column, else None."""
    if isinstance(feature, ClassLabel):
        return feature.names
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return inner.names
    return None


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


def _normalise(
    ds: Dataset,
    source: str,
    text_column: str | None,
    label_column: str | None,
    separator: str | None,
    skip_empty_texts: bool = False,
    allow_empty_texts: bool = False,
) -> Dataset:
    """Map a loaded split to ``text``/``labels`` (and ``id`` when present), validating every row."""
    text_col, label_cols, per_level = _resolve_columns(ds.column_names, source, text_column, label_column)
    keep_id = ID_COLUMN in ds.column_names and ID_COLUMN not in (text_col, *label_cols)
    features = Features({**RAW_FEATURES, ID_COLUMN: ds.features[ID_COLUMN]}) if keep_id else RAW_FEATURES
    names = None if per_level else _class_names(ds.features[label_cols[0]])
    empty_labels = f"columns {', '.join(label_cols)}" if per_level else f"column {label_cols[0]!r}"

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
            if per_level:
                row_labels = _level_path([values[j] for values in label_values], label_cols, fail)
            else:
                row_labels = _label_list(label_values[0][j], separator, names, fail)
            if not row_labels:
                fail(f"no labels (empty {empty_labels})")
            labels.append(row_labels)
            if keep_id:
                ids.append(batch[ID_COLUMN][j])
        return {"text": texts, "labels": labels, **({ID_COLUMN: ids} if keep_id else {})}

    fingerprint = _fingerprint(
        "normalise", ds._fingerprint, source, text_col, label_cols, separator, names, skip_empty_texts,
        allow_empty_texts
    )
    normalised = ds.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=ds.column_names,
        features=features,
        keep_in_memory=True,
        new_fingerprint=fingerprint,
        desc="Reading texts and labels",
    )
    if skipped:
        logger.warning("%s: skipped %d rows with empty text (rows %s)", source, len(skipped), skipped[:10])
    return normalised


def _fingerprint(*parts) -> str:
    """A cheap deterministic fingerprint (avoids hashing the mapped closures)."""
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- taxonomy


def build_taxonomy(
    raw: DatasetDict, taxonomy_file: str | None = None, label_names: dict | None = None
) -> Taxonomy:
    """The label tree: read from `taxonomy_file` (HiAGM ``.taxonomy`` or JSON ``{child: parent}``) or derived
    from the ``labels`` of every split, each read as a root-to-node path.

    `label_names` (``{label: readable name}``) names the labels; names of labels not in the tree are ignored.
    """
    if taxonomy_file is not None:
        taxonomy = Taxonomy.from_file(taxonomy_file)
    else:
        order = [s for s in SPLITS if s in raw] + [s for s in raw if s not in SPLITS]

        def where(index: int) -> str:
            for split in order:
                if index < len(raw[split]):
                    return f"split {split!r} row {index + 1}"
                index -= len(raw[split])
            return f"row {index + 1}"

        try:
            taxonomy = Taxonomy.from_paths((labels for split in order for labels in _labels_column(raw[split])), where)
        except ValueError as err:
            raise ValueError(
                f"cannot derive the taxonomy from the label lists, read as root-to-node paths: {err}; for label sets "
                "holding several paths, pass --taxonomy_file"
            ) from None
        if not len(taxonomy):
            raise ValueError("cannot derive the taxonomy: the datasets hold no labels")
    if label_names:
        known = {label: str(name) for label, name in label_names.items() if label in taxonomy.label2id}
        parents = [taxonomy.labels[p] if p >= 0 else None for p in taxonomy.parent_ids]
        taxonomy = Taxonomy(taxonomy.labels, parents, known)
    return taxonomy


def _labels_column(dataset: Dataset) -> list[list[str]]:
    """The ``labels`` column as Python lists, read in one batch (row-wise iteration is slow)."""
    if "labels" not in dataset.column_names:
        raise ValueError(f"no 'labels' column (available: {', '.join(dataset.column_names)})")
    return dataset.select_columns(["labels"])[:]["labels"] if len(dataset) else []


def encode_labels(
    dataset: Dataset, taxonomy: Taxonomy, add_ancestors: bool = True, source: str = "train"
) -> Dataset:
    """Add ``label_ids``: the sorted taxonomy indices of each example's ``labels`` (with every ancestor when
    ``add_ancestors``). Kept sparse: a multi-hot row per example would take 400 KB at 100,000 labels; the
    collator (`HTCDataCollator`) builds the multi-hot ``labels`` of each batch."""
    if "labels" not in dataset.column_names:
        raise ValueError(f"{source}: no 'labels' column (available: {', '.join(dataset.column_names)})")

    def encode(labels_batch: list[list[str]], indices: list[int]) -> dict:
        rows = []
        for labels, index in zip(labels_batch, indices):
            try:
                ids = taxonomy.label_ids(labels)
            except ValueError as err:
                raise ValueError(f"{source}: row {index + 1}: {err}") from None
            rows.append(sorted({a for i in ids for a in taxonomy.ancestors(i)} if add_ancestors else set(ids)))
        return {"label_ids": rows}

    if "label_ids" in dataset.column_names:
        dataset = dataset.remove_columns("label_ids")
    features = dataset.features.copy()
    features["label_ids"] = List(Value("int32"))
    taxonomy_key = _fingerprint(taxonomy.labels, taxonomy.parent_ids)
    return dataset.map(
        encode,
        batched=True,
        with_indices=True,
        input_columns=["labels"],
        features=features,
        keep_in_memory=True,
        new_fingerprint=_fingerprint("encode", dataset._fingerprint, taxonomy_key, add_ancestors, source),
        desc=f"Encoding {source} labels",
    )


# ---------------------------------------------------------------------------------------------- splitting


def split_validation(
    train: Dataset, validation_fraction: float = 0.1, seed: int = 42
) -> tuple[Dataset, Dataset]:
    """Seeded split of `train` into (train, validation), stratified by each example's last (deepest) label.

    Labels with at least two examples are stratified (each keeps at least one example in train); examples
    whose last label is unique are pooled and split at random, so with no repeated label the split is a plain
    seeded random split. The validation part has ``round(validation_fraction * len(train))`` examples.
    """
    keys = [labels[-1] if labels else "" for labels in _labels_column(train)]
    keep, holdout = _split_keys(keys, validation_fraction, seed)
    return (
        _select(train, keep, "train", validation_fraction, seed),
        _select(train, holdout, "validation", validation_fraction, seed),
    )


def _select(dataset: Dataset, indices: list[int], part: str, fraction: float, seed: int) -> Dataset:
    """In-memory `select` with a cheap deterministic fingerprint (hashing long index lists is slow)."""
    fingerprint = _fingerprint("split", dataset._fingerprint, part, fraction, seed, len(indices))
    return dataset.select(indices, keep_in_memory=True, new_fingerprint=fingerprint)


def _split_keys(keys: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held-out) indices for holding out ``round(fraction * n)`` examples stratified by `keys`."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    n = len(keys)
    if n < 2:
        raise ValueError(f"cannot split a validation set from {n} example(s)")
    n_holdout = min(max(round(n * fraction), 1), n - 1)
    keep, holdout = _stratified_indices(keys, n_holdout, seed)
    # Shuffle both parts (seeded) so that taking the first N examples (max_*_samples) is a random sample.
    rng = np.random.default_rng(seed)
    return rng.permutation(keep).tolist(), rng.permutation(holdout).tolist()


def _stratified_indices(keys: Sequence[str], n_holdout: int, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held-out) sorted indices; per-stratum counts by the largest-remainder method."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    strata = [groups[key] for key in sorted(groups) if len(groups[key]) >= 2]
    pool = [index for key in sorted(groups) if len(groups[key]) < 2 for index in groups[key]]
    caps = [len(members) - 1 for members in strata]  # every repeated label keeps one training example
    if pool:
        strata.append(pool)
        caps.append(len(pool))
    rng = np.random.default_rng(seed)
    sizes = np.array([len(members) for members in strata], dtype=np.float64)
    quota = n_holdout * sizes / sizes.sum()
    alloc = np.minimum(np.floor(quota).astype(np.int64), caps)
    order = np.lexsort((rng.random(len(strata)), -(quota - alloc)))  # largest remainder first, random ties
    remaining = n_holdout - int(alloc.sum())
    for limits in (np.asarray(caps), sizes.astype(np.int64)):  # relax the caps only if the fraction needs it
        while remaining > 0:
            progressed = False
            for s in order:
                if remaining and alloc[s] < limits[s]:
                    alloc[s] += 1
                    remaining -= 1
                    progressed = True
            if not progressed:
                break
    holdout: list[int] = []
    for members, count in zip(strata, alloc):
        holdout.extend(int(i) for i in rng.permutation(members)[:count])
    held = set(holdout)
    return [i for i in range(len(keys)) if i not in held], sorted(holdout)


# ---------------------------------------------------------------------------------------------- ICD-10-CM


@functools.lru_cache(maxsize=1)
def _icd10cm_tree() -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...], dict[str, str]]:
    """(root-to-code chains, descriptions, label names) for every ICD-10-CM category and subcategory.

    A few codes are both a block and that block's only category (e.g. ``B99``); the block is then labelled
    ``"B99-B99"`` so labels stay unique.
    """
    with warnings.catch_warnings():  # the package reads its data with deprecated importlib.resources calls
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm as cm

    chains, texts, names = [], [], {}
    seen = set()
    for code in cm.get_all_codes():
        if code in seen or not (cm.is_category(code) or cm.is_subcategory(code)):
            continue
        seen.add(code)
        chain = list(reversed(cm.get_ancestors(code))) + [code]
        for i in range(len(chain) - 1):
            if chain[i] == chain[i + 1]:
                block = f"{chain[i]}-{chain[i]}"
                if block not in names:
                    names[block] = cm.get_description(chain[i], prioritize_blocks=True)
                chain[i] = block
        for node in chain:
            if node not in names:
                names[node] = cm.get_description(node)
        chains.append(tuple(chain))
        texts.append(cm.get_description(code))
    return tuple(chains), tuple(texts), names


def load_icd10cm(
    depth: int = 2, seed: int = 42, validation_fraction: float = 0.1, test_fraction: float = 0.1
) -> tuple[DatasetDict, Taxonomy]:
    """The embedded ICD-10-CM dataset: one example per category/subcategory code, text = its description,
    labels = its chapter > block > category > … chain cut to `depth` levels (2 = chapter > block).

    Returns seeded train/validation/test splits stratified by the deepest label (a fraction of 0 omits that
    split) and the taxonomy of the label nodes that occur, named by their descriptions.
    """
    chains, texts, names = _icd10cm_tree()
    max_depth = max(len(chain) for chain in chains)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= max_depth:
        raise ValueError(f"ICD-10-CM depth must be an integer between 1 and {max_depth}, got {depth!r}")
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise ValueError(f"{name} must be in [0, 1), got {fraction}")
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            f"validation_fraction + test_fraction must be below 1, got {validation_fraction} + {test_fraction}"
        )

    labels = [list(chain[:depth]) for chain in chains]
    parents: dict[str, str | None] = {}
    for path in labels:
        for i, node in enumerate(path):
            parents.setdefault(node, path[i - 1] if i else None)
    taxonomy = Taxonomy(list(parents), list(parents.values()), {node: names[node] for node in parents})

    columns = {"text": pa.array(texts, pa.string()), "labels": pa.array(labels, pa.list_(pa.string()))}
    data = Dataset.from_dict(columns, features=RAW_FEATURES)  # Arrow arrays: no per-row type inference
    # Same result as split_validation(data, test_fraction) then split_validation(rest, …), on index lists.
    keys = [path[-1] for path in labels]
    rest, parts = list(range(len(keys))), {}
    if test_fraction > 0:
        keep, held = _split_keys(keys, test_fraction, seed)
        rest, parts["test"] = keep, (held, test_fraction)
    if validation_fraction > 0:
        fraction = validation_fraction / (1 - test_fraction)
        keep, held = _split_keys([keys[i] for i in rest], fraction, seed)
        rest, parts["validation"] = [rest[i] for i in keep], ([rest[i] for i in held], fraction)
    splits = {"train": _select(data, rest, "train", validation_fraction + test_fraction, seed)}
    for split in ("validation", "test"):
        if split in parts:
            splits[split] = _select(data, parts[split][0], split, parts[split][1], seed)
    return DatasetDict(splits), taxonomy
