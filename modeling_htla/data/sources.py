"""`load_raw_datasets`: local files (see `formats`) or a Hub dataset, read into ``text``/``labels`` splits."""

from __future__ import annotations

from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from .formats import read_file, root_message, why_unreadable
from .rows import normalise

SPLITS = ("train", "validation", "test")
_HUB_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}


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
    (a fresh temporary cache per call, memory-mapped: `formats.read_file`); `cache_dir` is used for Hub downloads.
    An empty or whitespace-only text is an error in train and validation unless `skip_empty_texts`, which drops
    such rows with a warning; in the test split it is kept, since a document to predict may well be empty. The test
    split may also have no label column (documents to classify): it then has no ``labels``.
    """
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    files = {split: path for split, path in files.items() if path is not None}
    if dataset_name and files:
        given = ", ".join(map(str, files.values()))
        raise ValueError(f"give either dataset_name ({dataset_name!r}) or data files ({given}), not both")
    if not dataset_name and not files:
        raise ValueError("no data: pass train_file/validation_file/test_file or dataset_name")

    def normalised(ds: Dataset, source: str, split: str) -> Dataset:
        return normalise(ds, source, text_column, label_column, label_separator, skip_empty_texts,
                         allow_empty_texts=split == "test", labels_optional=split == "test")

    if dataset_name:
        loaded = _load_hub(dataset_name, dataset_config_name, cache_dir)
        return DatasetDict({split: normalised(ds, source, split) for split, (ds, source) in loaded.items()})
    splits = {}
    for split, path in files.items():
        try:
            splits[split] = normalised(read_file(path), str(path), split)
        except UnicodeDecodeError as err:  # the JSON reader can defer UTF-8 validation to the first read
            raise ValueError(f"{path}: {why_unreadable(Path(path), 'json', err)}") from None
    return DatasetDict(splits)


def _load_hub(name: str, config: str | None, cache_dir: str | None) -> dict[str, tuple[Dataset, str]]:
    """Load a Hub dataset and map its split names onto train/validation/test."""
    label = f"dataset {name!r}" + (f" (config {config!r})" if config else "")
    try:
        loaded = datasets.load_dataset(name, config, cache_dir=cache_dir)
    except Exception as err:  # noqa: BLE001 - network, missing dataset, bad config …
        raise ValueError(f"{label}: cannot load ({root_message(err)})") from None
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
