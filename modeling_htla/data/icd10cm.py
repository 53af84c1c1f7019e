"""The embedded ICD-10-CM example data set (`python run_htc.py` with no data arguments): one example per
category/subcategory code of the ``simple_icd_10_cm`` package, its description as the text and its code chain as the
labels."""

from __future__ import annotations

import functools
import warnings

import pyarrow as pa
from datasets import Dataset, DatasetDict

from ..taxonomy import Taxonomy
from .rows import RAW_FEATURES
from .splits import select_rows, split_keys


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
        keep, held = split_keys(keys, test_fraction, seed)
        rest, parts["test"] = keep, (held, test_fraction)
    if validation_fraction > 0:
        fraction = validation_fraction / (1 - test_fraction)
        keep, held = split_keys([keys[i] for i in rest], fraction, seed)
        rest, parts["validation"] = [rest[i] for i in keep], ([rest[i] for i in held], fraction)
    splits = {"train": select_rows(data, rest, "train", validation_fraction + test_fraction, seed)}
    for split in ("validation", "test"):
        if split in parts:
            splits[split] = select_rows(data, parts[split][0], split, parts[split][1], seed)
    return DatasetDict(splits), taxonomy
