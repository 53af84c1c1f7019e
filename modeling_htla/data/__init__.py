"""Data for hierarchical text classification: raw splits, the label taxonomy and multi-hot targets.

Every source is read through the `datasets` library into splits with the columns ``text`` (str) and ``labels``
(list[str], a root-to-node path or a label set), plus the source's ``id`` column when it has one (so predictions can
be joined back to the documents). Bad input raises `ValueError` with one line naming the file (or dataset), the
1-based row where it applies and the problem; no pyarrow/datasets traceback is let through for those cases.

Where each part lives:

* `sources` - `load_raw_datasets`: local files or a Hub dataset, into ``text``/``labels`` splits;
* `formats` - JSON Lines / JSON / CSV / Parquet files, and why one cannot be read;
* `columns` - which columns hold the text and the labels;
* `rows` - each row's text and labels, checked and normalised;
* `labels` - `build_taxonomy` and `encode_labels` (multi-hot targets);
* `splits` - `split_validation`, stratified by the deepest label;
* `sampling` - `sample_per_leaf`, k examples per leaf (few-shot training sets), and `examples_per_leaf`;
* `icd10cm` - `load_icd10cm`, the embedded ICD-10-CM example data set;
* `fingerprint` - cache fingerprints for the maps and selects above.
"""

from .columns import LABEL_COLUMNS, LEVEL_COLUMN_PATTERN, TEXT_COLUMNS
from .icd10cm import load_icd10cm
from .labels import build_taxonomy, encode_labels
from .rows import ID_COLUMN, RAW_FEATURES
from .sampling import examples_per_leaf, sample_per_leaf
from .sources import SPLITS, load_raw_datasets
from .splits import split_validation

__all__ = [
    "ID_COLUMN",
    "LABEL_COLUMNS",
    "LEVEL_COLUMN_PATTERN",
    "RAW_FEATURES",
    "SPLITS",
    "TEXT_COLUMNS",
    "build_taxonomy",
    "encode_labels",
    "examples_per_leaf",
    "load_icd10cm",
    "load_raw_datasets",
    "sample_per_leaf",
    "split_validation",
]
