"""The label taxonomy of the splits, and each example's label ids (`Taxonomy.label_set`)."""

from __future__ import annotations

from datasets import Dataset, DatasetDict, List, Value

from ..taxonomy import Taxonomy
from .fingerprint import fingerprint
from .sources import SPLITS


def build_taxonomy(
    raw: DatasetDict, taxonomy_file: str | None = None, label_names: dict | None = None
) -> Taxonomy:
    """The label tree: read from `taxonomy_file` (HiAGM ``.taxonomy`` or JSON ``{child: parent}``) or derived
    from the ``labels`` of every split that has them (documents to classify may have none), each read as a
    root-to-node path.

    `label_names` (``{label: readable name}``) names the labels; names of labels not in the tree are ignored.
    """
    if taxonomy_file is not None:
        taxonomy = Taxonomy.from_file(taxonomy_file)
    else:
        order = [s for s in SPLITS if s in raw] + [s for s in raw if s not in SPLITS]
        order = [s for s in order if "labels" in raw[s].column_names]

        def where(index: int) -> str:
            for split in order:
                if index < len(raw[split]):
                    return f"split {split!r} row {index + 1}"
                index -= len(raw[split])
            return f"row {index + 1}"

        try:
            taxonomy = Taxonomy.from_paths((labels for split in order for labels in labels_column(raw[split])), where)
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


def labels_column(dataset: Dataset) -> list[list[str]]:
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
                rows.append(taxonomy.label_set(labels, add_ancestors))
            except ValueError as err:
                raise ValueError(f"{source}: row {index + 1}: {err}") from None
        return {"label_ids": rows}

    if "label_ids" in dataset.column_names:
        dataset = dataset.remove_columns("label_ids")
    features = dataset.features.copy()
    features["label_ids"] = List(Value("int32"))
    taxonomy_key = fingerprint(taxonomy.labels, taxonomy.parent_ids)
    return dataset.map(
        encode,
        batched=True,
        with_indices=True,
        input_columns=["labels"],
        features=features,
        load_from_cache_file=False,  # computed afresh, as the files are read afresh
        new_fingerprint=fingerprint("encode", dataset._fingerprint, taxonomy_key, add_ancestors, source),
        desc=f"Encoding {source} labels",
    )
