"""Tests for modeling_htla.data: loading formats, error messages, taxonomy, label encoding, splits, ICD-10-CM."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
from datasets import DatasetDict

from modeling_htla.data import (
    build_taxonomy,
    encode_labels,
    load_icd10cm,
    load_raw_datasets,
    split_validation,
)
from modeling_htla.taxonomy import Taxonomy

from conftest import SHARED_DATA

NEWSGROUPS = SHARED_DATA / "20newsgroups"


# ---------------------------------------------------------------------------------------------- helpers


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def as_rows(dataset) -> list[tuple[str, list[str]]]:
    return list(zip(dataset["text"], dataset["labels"]))


def expect_error(*fragments: str, **kwargs) -> ValueError:
    """Call load_raw_datasets(**kwargs) and check the ValueError is one line containing every fragment."""
    with pytest.raises(ValueError, match=re.escape(fragments[0])) as info:
        load_raw_datasets(**kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    error = info.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), "traceback leaked"
    return info.value


PATH_ROWS = [
    {"text": "a mac question", "labels": ["comp", "comp.sys", "comp.sys.mac"]},
    {"text": "a pc question", "labels": ["comp", "comp.sys", "comp.sys.pc"]},
    {"text": "hockey game", "labels": ["rec", "rec.hockey"]},
]


# ---------------------------------------------------------------------------------------------- formats


def test_jsonl_list_labels_all_splits(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [dict(row, id=i) for i, row in enumerate(PATH_ROWS)])
    test = write_jsonl(tmp_path / "test.jsonl", PATH_ROWS[:1])
    raw = load_raw_datasets(train_file=str(train), test_file=str(test))
    assert list(raw) == ["train", "test"]
    assert raw["train"].column_names == ["text", "labels", "id"] and raw["train"]["id"][:] == [0, 1, 2]
    assert raw["test"].column_names == ["text", "labels"]
    assert as_rows(raw["train"]) == [(row["text"], row["labels"]) for row in PATH_ROWS]
    assert raw["test"][0]["labels"] == ["comp", "comp.sys", "comp.sys.mac"]


def test_jsonl_path_strings_custom_separator(tmp_path):
    rows = [{"text": "t1", "labels": "comp/comp.sys/comp.sys.mac"}, {"text": "t2", "labels": " rec / rec.hockey "}]
    raw = load_raw_datasets(train_file=str(write_jsonl(tmp_path / "d.jsonl", rows)), label_separator="/")
    assert raw["train"]["labels"][:] == [["comp", "comp.sys", "comp.sys.mac"], ["rec", "rec.hockey"]]


def test_default_separator_and_label_path_column(tmp_path):
    rows = [{"content": "t1", "label_path": "comp > comp.sys > comp.sys.mac.hardware"}]
    raw = load_raw_datasets(validation_file=str(write_jsonl(tmp_path / "v.jsonl", rows)))
    assert raw["validation"][0] == {"text": "t1", "labels": ["comp", "comp.sys", "comp.sys.mac.hardware"]}


def test_csv_path_string_and_json_list_string(tmp_path):
    path = write_csv(
        tmp_path / "d.csv",
        ["id", "text", "labels"],
        [[1, "first, with comma", "comp > comp.sys"], [2, "second", '["rec", "rec.hockey"]'], [3, "NA", "NA"]],
    )
    raw = load_raw_datasets(train_file=str(path))
    assert as_rows(raw["train"]) == [
        ("first, with comma", ["comp", "comp.sys"]),
        ("second", ["rec", "rec.hockey"]),
        ("NA", ["NA"]),  # "NA" is a string, not a missing value
    ]


def test_json_list_of_objects(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(PATH_ROWS, indent=2), encoding="utf-8")
    raw = load_raw_datasets(train_file=str(path))
    assert as_rows(raw["train"]) == [(row["text"], row["labels"]) for row in PATH_ROWS]


def test_hiagm_doc_token_doc_label(tmp_path):
    rows = [
        {"doc_token": ["stocks", "fell", "sharply"], "doc_label": ["CCAT", "C15", "GCAT"], "doc_topic": []},
        {"doc_token": ["rain", "today"], "doc_label": ["GCAT"], "doc_topic": []},
    ]
    raw = load_raw_datasets(train_file=str(write_jsonl(tmp_path / "rcv1_train.json", rows)))
    assert as_rows(raw["train"]) == [("stocks fell sharply", ["CCAT", "C15", "GCAT"]), ("rain today", ["GCAT"])]


def test_per_level_integer_columns_wos_shape(tmp_path):
    rows = [
        {"input_data": "deep nets", "label": 17, "label_level_1": 3, "label_level_2": 7},
        {"input_data": "proteins", "label": 40, "label_level_1": 5, "label_level_2": 7},
        {"input_data": "more nets", "label": 17, "label_level_1": 3, "label_level_2": 7},
    ]
    raw = load_raw_datasets(train_file=str(write_jsonl(tmp_path / "wos.jsonl", rows)))
    assert as_rows(raw["train"]) == [
        ("deep nets", ["3", "3/7"]),
        ("proteins", ["5", "5/7"]),
        ("more nets", ["3", "3/7"]),
    ]
    taxonomy = build_taxonomy(raw)
    assert taxonomy.labels == ["3", "3/7", "5", "5/7"] and taxonomy.path(1) == "3 > 3/7"


def test_per_level_columns_csv_and_strings(tmp_path):
    ints = write_csv(tmp_path / "wos.csv", ["input_data", "label", "label_level_1", "label_level_2"], [["x", 0, 1, 2]])
    assert load_raw_datasets(test_file=str(ints))["test"]["labels"][:] == [["1", "1/2"]]
    rows = [
        {"text": "a", "label_level_2": "Machine learning", "label_level_1": "CS"},
        {"text": "b", "label_level_1": "Biology", "label_level_2": None},  # a shallower path
    ]
    raw = load_raw_datasets(train_file=str(write_jsonl(tmp_path / "levels.jsonl", rows)))
    assert raw["train"]["labels"][:] == [["CS", "Machine learning"], ["Biology"]]


def test_explicit_columns(tmp_path):
    rows = [{"body": "hello", "cats": "a > b", "labels": "ignored", "l1": "x", "l2": "y"}]
    path = str(write_jsonl(tmp_path / "d.jsonl", rows))
    raw = load_raw_datasets(train_file=path, text_column="body", label_column="cats")
    assert raw["train"][0] == {"text": "hello", "labels": ["a", "b"]}
    raw = load_raw_datasets(train_file=path, text_column="body", label_column="l1,l2")
    assert raw["train"][0]["labels"] == ["x", "y"]


def test_changed_file_is_reread(tmp_path):
    path = tmp_path / "d.jsonl"
    write_jsonl(path, PATH_ROWS[:1])
    assert load_raw_datasets(train_file=str(path))["train"]["text"][:] == ["a mac question"]
    write_jsonl(path, PATH_ROWS[1:])
    assert load_raw_datasets(train_file=str(path))["train"]["text"][:] == ["a pc question", "hockey game"]


def test_hub_code_path_with_local_folder(tmp_path):
    """A dataset id goes through datasets.load_dataset; a local folder of the WOS shape stands in for the Hub."""
    folder = tmp_path / "wos_hub"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"input_data": "x", "label": 1, "label_level_1": 0, "label_level_2": 4}])
    write_jsonl(folder / "test.jsonl", [{"input_data": "y", "label": 2, "label_level_1": 1, "label_level_2": 0}])
    raw = load_raw_datasets(dataset_name=str(folder))
    assert list(raw) == ["train", "test"]
    assert raw["train"][0] == {"text": "x", "labels": ["0", "0/4"]}


# ---------------------------------------------------------------------------------------------- bad input


def test_missing_and_unreadable_files(tmp_path):
    expect_error("nope.jsonl", "not found", train_file=str(tmp_path / "nope.jsonl"))
    (tmp_path / "folder.jsonl").mkdir()
    expect_error("folder.jsonl", "not a regular file", train_file=str(tmp_path / "folder.jsonl"))
    (tmp_path / "d.txt").write_text("x", encoding="utf-8")
    expect_error("d.txt", "unsupported file type", train_file=str(tmp_path / "d.txt"))
    expect_error("no data")
    expect_error("either dataset_name", dataset_name="org/name", train_file=str(tmp_path / "d.jsonl"))


def test_unreachable_hub_dataset_names_the_dataset():
    expect_error("dataset 'htla-test/does-not-exist'", "cannot load", dataset_name="htla-test/does-not-exist")


def test_non_utf8(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "ok", "labels": ["a"]}\n{"text": "caf\xe9", "labels": ["a"]}\n')
    expect_error("latin.jsonl", "not UTF-8", "line 2", train_file=str(path))
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,labels\ncaf\xe9,a\n")
    expect_error("latin.csv", "not UTF-8", train_file=str(path))


def test_invalid_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "labels": ["a"]}\n{"text": oops}\n', encoding="utf-8")
    expect_error("bad.jsonl", "line 2", "invalid JSON", train_file=str(path))


def test_mixed_label_types_in_one_file(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": "x > y"}\n', encoding="utf-8")
    assert load_raw_datasets(train_file=str(path))["train"]["labels"][:] == [["x"], ["x", "y"]]


def test_unknown_and_missing_columns(tmp_path):
    path = str(write_jsonl(tmp_path / "d.jsonl", PATH_ROWS))
    expect_error("d.jsonl", "'body'", "not found", "available: text, labels", train_file=path, text_column="body")
    expect_error("d.jsonl", "'cats'", "not found", "available: text, labels", train_file=path, label_column="cats")
    nolabel = str(write_jsonl(tmp_path / "nolabel.jsonl", [{"text": "x", "topic": "y"}]))
    expect_error("nolabel.jsonl", "no label column", "available: text, topic", train_file=nolabel)
    notext = str(write_jsonl(tmp_path / "notext.jsonl", [{"body": "x", "labels": ["y"]}]))
    expect_error("notext.jsonl", "no text column", "available: body, labels", train_file=notext)


@pytest.mark.parametrize("text", ["", "   \n\t", None])
def test_empty_text_names_the_row(tmp_path, text):
    rows = PATH_ROWS[:2] + [{"text": text, "labels": ["rec"]}]
    expect_error("d.jsonl", "row 3", "empty text", train_file=str(write_jsonl(tmp_path / "d.jsonl", rows)))


def test_empty_csv_text_names_the_row(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "labels"], [["ok", "a"], ["", "a"]])
    expect_error("d.csv", "row 2", "empty text", train_file=str(path))


@pytest.mark.parametrize("labels", [[], "", None, "   "])
def test_row_without_labels(tmp_path, labels):
    rows = [PATH_ROWS[0], {"text": "x", "labels": labels}]
    expect_error("d.jsonl", "row 2", "no labels", train_file=str(write_jsonl(tmp_path / "d.jsonl", rows)))


def test_bad_label_values(tmp_path):
    rows = [{"text": "x", "labels": "a >  > b"}]
    expect_error("d.jsonl", "row 1", "empty label", train_file=str(write_jsonl(tmp_path / "d.jsonl", rows)))
    path = write_csv(tmp_path / "d.csv", ["text", "labels"], [["x", "a"], ["y", '["a" "b"]']])
    expect_error("d.csv", "row 2", "not valid JSON", train_file=str(path))
    rows = [{"text": "x", "label_level_1": None, "label_level_2": 3}]
    path = write_jsonl(tmp_path / "lv.jsonl", rows)
    expect_error("lv.jsonl", "row 1", "'label_level_1' is empty", train_file=str(path))


def test_empty_splits(tmp_path):
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    expect_error("empty.jsonl", "0 rows", train_file=str(tmp_path / "empty.jsonl"))
    (tmp_path / "blank.jsonl").write_text("\n  \n", encoding="utf-8")
    expect_error("blank.jsonl", "0 rows", train_file=str(tmp_path / "blank.jsonl"))
    header = write_csv(tmp_path / "header.csv", ["text", "labels"], [])
    expect_error("header.csv", "0 rows", validation_file=str(header))
    (tmp_path / "empty.json").write_text("[]", encoding="utf-8")
    expect_error("empty.json", "0 rows", test_file=str(tmp_path / "empty.json"))


# ---------------------------------------------------------------------------------------------- taxonomy


@pytest.fixture
def raw_paths(tmp_path):
    return load_raw_datasets(train_file=str(write_jsonl(tmp_path / "train.jsonl", PATH_ROWS)))


def test_build_taxonomy_derived(raw_paths):
    taxonomy = build_taxonomy(raw_paths, label_names={"comp": "Computers", "unused": "ignored"})
    assert taxonomy.labels == ["comp", "comp.sys", "comp.sys.mac", "comp.sys.pc", "rec", "rec.hockey"]
    assert taxonomy.path(taxonomy.label2id["comp.sys.pc"]) == "comp > comp.sys > comp.sys.pc"
    assert taxonomy.names[0] == "Computers" and taxonomy.names[1] == "comp.sys"


def test_build_taxonomy_from_files(raw_paths, tmp_path):
    hiagm = tmp_path / "t.taxonomy"
    hiagm.write_text("Root\tcomp\trec\ncomp\tcomp.sys\ncomp.sys\tcomp.sys.mac\tcomp.sys.pc\nrec\trec.hockey\n")
    taxonomy = build_taxonomy(raw_paths, taxonomy_file=str(hiagm))
    assert taxonomy.labels == ["comp", "rec", "comp.sys", "comp.sys.mac", "comp.sys.pc", "rec.hockey"]
    assert taxonomy.path(taxonomy.label2id["comp.sys.pc"]) == "comp > comp.sys > comp.sys.pc"
    mapping = tmp_path / "t.json"
    mapping.write_text(json.dumps({"comp": None, "comp.sys": "comp", "rec": "Root"}))
    taxonomy = build_taxonomy(raw_paths, taxonomy_file=str(mapping), label_names={"rec": "Recreation"})
    assert taxonomy.parent_ids == [-1, 0, -1] and taxonomy.names[2] == "Recreation"
    with pytest.raises(ValueError, match="missing.taxonomy"):
        build_taxonomy(raw_paths, taxonomy_file=str(tmp_path / "missing.taxonomy"))


def test_build_taxonomy_derivation_failure(tmp_path):
    """Label sets holding several paths, read as one path, put a top-level label under another one."""
    rows = [{"text": "a", "labels": ["GCAT", "G15"]}, {"text": "b", "labels": ["CCAT", "C15", "GCAT"]}]
    raw = load_raw_datasets(train_file=str(write_jsonl(tmp_path / "multi.jsonl", rows)),
                            validation_file=str(write_jsonl(tmp_path / "dev.jsonl", rows[1:])))
    with pytest.raises(ValueError, match="--taxonomy_file") as info:
        build_taxonomy(raw)
    message = str(info.value)
    assert "--taxonomy_file" in message and "'GCAT'" in message and "split 'train' row 1" in message
    assert "split 'train' row 2" in message
    raw = DatasetDict({"train": raw["train"].select([0]), "validation": raw["validation"]})
    with pytest.raises(ValueError, match="split 'validation' row 1"):
        build_taxonomy(raw)


def test_repeated_area_names_as_in_web_of_science(tmp_path):
    """WOS-46985 has the area 'Depression' under both 'Psychology' and 'Medical' (CSV, one column per level)."""
    rows = [["sad mood", "Psychology", "Depression"], ["ssri dose", "Medical", "Depression"],
            ["tumour", "Medical", "Cancer"]]
    raw = load_raw_datasets(
        train_file=str(write_csv(tmp_path / "wos.csv", ["text", "label_level_1", "label_level_2"], rows)))
    taxonomy = build_taxonomy(raw)
    assert taxonomy.labels == ["Psychology", "Psychology > Depression", "Medical", "Medical > Depression", "Cancer"]
    assert taxonomy.names == ["Psychology", "Depression", "Medical", "Depression", "Cancer"]
    encoded = encode_labels(raw["train"], taxonomy)
    assert [[taxonomy.labels[i] for i in ids] for ids in encoded["label_ids"]] == [
        ["Psychology", "Psychology > Depression"], ["Medical", "Medical > Depression"], ["Medical", "Cancer"]]
    only = load_raw_datasets(train_file=str(write_jsonl(tmp_path / "only.jsonl", [{"text": "x", "labels": ["Depression"]}])))
    with pytest.raises(ValueError, match=r"train: row 1: label 'Depression' is not in the taxonomy .*give its parent"):
        encode_labels(only["train"], taxonomy)


# ---------------------------------------------------------------------------------------------- encoding


def test_encode_labels(raw_paths):
    taxonomy = build_taxonomy(raw_paths)
    encoded = encode_labels(raw_paths["train"], taxonomy)
    assert encoded.column_names == ["text", "labels", "label_ids"]
    assert encoded[0]["label_ids"] == [0, 1, 2]  # sorted indices, ancestors included
    partial = raw_paths["train"].map(lambda ex: {"labels": ex["labels"][-1:]})
    only_leaf = encode_labels(partial, taxonomy, add_ancestors=False)
    assert only_leaf[0]["label_ids"] == [2]
    with_ancestors = encode_labels(partial, taxonomy, add_ancestors=True)
    assert with_ancestors["label_ids"][:] == encoded["label_ids"][:]


def test_collator_builds_each_batch_multi_hot_from_label_ids(raw_paths):
    from transformers import BertTokenizerFast

    from modeling_htla.collator import HTCDataCollator

    taxonomy = build_taxonomy(raw_paths)
    encoded = encode_labels(raw_paths["train"], taxonomy)
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])}
    collator = HTCDataCollator(BertTokenizerFast(vocab=vocab), num_labels=len(taxonomy))
    rows = [{"input_ids": [2] + [1] * (1 + n) + [3], "label_ids": ids} for n, ids in enumerate(encoded["label_ids"][:3])]
    batch = collator(rows)
    expected = torch.tensor([taxonomy.encode(labels) for labels in encoded["labels"][:3]])
    assert torch.equal(batch["labels"], expected) and batch["labels"].dtype == torch.float32
    assert batch["input_ids"].shape == (3, 5) and "label_ids" not in batch
    assert "label_ids" in rows[0]  # the dataset's rows are not changed


def test_encode_labels_unknown_label(raw_paths):
    taxonomy = Taxonomy.from_paths([["comp", "comp.sys", "comp.sys.mac"], ["comp", "comp.sys", "comp.sys.pc"]])
    with pytest.raises(ValueError, match="validation.jsonl") as info:
        encode_labels(raw_paths["train"], taxonomy, source="validation.jsonl")
    message = str(info.value)
    assert "validation.jsonl" in message and "row 3" in message and "'rec'" in message


# ---------------------------------------------------------------------------------------------- splitting


def make_split_dataset(n_leaves: int = 10, per_leaf: int = 6):
    from datasets import Dataset

    texts, labels = [], []
    for leaf in range(n_leaves):
        for k in range(per_leaf + leaf % 3):
            texts.append(f"doc {leaf}-{k}")
            labels.append([f"top{leaf % 2}", f"leaf{leaf}"])
    texts.append("a lonely doc")
    labels.append(["top0", "rare"])
    return Dataset.from_dict({"text": texts, "labels": labels})


def test_split_validation_deterministic_disjoint_sizes():
    data = make_split_dataset()
    train, validation = split_validation(data, 0.2, seed=7)
    again_train, again_validation = split_validation(data, 0.2, seed=7)
    assert train["text"][:] == again_train["text"][:] and validation["text"][:] == again_validation["text"][:]
    assert len(validation) == round(0.2 * len(data)) and len(train) + len(validation) == len(data)
    assert set(train["text"]).isdisjoint(validation["text"])
    assert set(train["text"]) | set(validation["text"]) == set(data["text"])
    _, other = split_validation(data, 0.2, seed=8)
    assert other["text"][:] != validation["text"][:]


def test_split_validation_is_stratified():
    data = make_split_dataset()
    train, validation = split_validation(data, 0.5, seed=0)
    leaves = [labels[-1] for labels in data["labels"]]
    counts = {leaf: leaves.count(leaf) for leaf in set(leaves)}
    train_leaves = [labels[-1] for labels in train["labels"]]
    validation_leaves = [labels[-1] for labels in validation["labels"]]
    for leaf, count in counts.items():
        if count >= 2:
            assert leaf in train_leaves
            assert abs(validation_leaves.count(leaf) - count / 2) <= 1, leaf


def test_split_validation_random_fallback_and_errors():
    from datasets import Dataset

    data = Dataset.from_dict({"text": [f"t{i}" for i in range(20)], "labels": [[f"l{i}"] for i in range(20)]})
    train, validation = split_validation(data, 0.25, seed=1)
    assert len(validation) == 5 and len(train) == 15
    assert split_validation(data, 0.25, seed=1)[1]["text"][:] == validation["text"][:]
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_validation(data, 1.5)
    with pytest.raises(ValueError, match="1 example"):
        split_validation(data.select([0]), 0.5)


# ---------------------------------------------------------------------------------------------- ICD-10-CM


@pytest.fixture(scope="module")
def icd_depth2():
    return load_icd10cm(depth=2, seed=42)


def test_icd10cm_depth1_has_22_chapters():
    raw, taxonomy = load_icd10cm(depth=1)
    assert len(taxonomy) == 22 and taxonomy.num_levels == 1
    assert all(len(labels) == 1 for labels in raw["train"]["labels"][:100])


def test_icd10cm_names_and_paths(icd_depth2):
    raw, taxonomy = icd_depth2
    assert taxonomy.num_levels == 2
    assert taxonomy.names[taxonomy.label2id["1"]] == "Certain infectious and parasitic diseases (A00-B99)"
    assert taxonomy.names[taxonomy.label2id["A00-A09"]] == "Intestinal infectious diseases (A00-A09)"
    assert taxonomy.parent_ids[taxonomy.label2id["A00-A09"]] == taxonomy.label2id["1"]
    for split in raw.values():
        for labels in split["labels"][:]:
            assert len(labels) == 2
            assert [taxonomy.labels[i] for i in taxonomy.ancestors(taxonomy.label2id[labels[-1]])] == labels
    assert raw["train"].column_names == ["text", "labels"]


def test_icd10cm_split_sizes_and_determinism(icd_depth2):
    raw, taxonomy = icd_depth2
    sizes = {split: len(ds) for split, ds in raw.items()}
    total = sum(sizes.values())
    assert list(sizes) == ["train", "validation", "test"]
    assert abs(sizes["test"] - 0.1 * total) <= 1 and abs(sizes["validation"] - 0.1 * total) <= 1
    again, again_taxonomy = load_icd10cm(depth=2, seed=42)
    assert again_taxonomy == taxonomy
    for split in raw:
        assert again[split]["text"][:50] == raw[split]["text"][:50]
        assert len(again[split]) == sizes[split]
    other, _ = load_icd10cm(depth=2, seed=1)
    assert other["test"]["text"][:50] != raw["test"]["text"][:50]


def test_icd10cm_deeper_paths_and_bad_depth():
    raw, taxonomy = load_icd10cm(depth=3, validation_fraction=0.0, test_fraction=0.2)
    assert list(raw) == ["train", "test"]
    rows = {text: labels for split in raw.values() for text, labels in zip(split["text"][:], split["labels"][:])}
    assert rows["Cholera"] == ["1", "A00-A09", "A00"]
    assert rows["Typhoid fever, unspecified"] == ["1", "A00-A09", "A01"]
    assert taxonomy.names[taxonomy.label2id["A00"]] == "Cholera"
    for labels in raw["test"]["labels"][:]:  # each a path from the top
        assert labels == [taxonomy.labels[i] for i in taxonomy.ancestors(taxonomy.label2id[labels[-1]])]
    for depth in (0, 99):
        with pytest.raises(ValueError, match="depth"):
            load_icd10cm(depth=depth)


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.skipif(not NEWSGROUPS.is_dir(), reason=f"20 Newsgroups data not beside the repository ({NEWSGROUPS})")
def test_real_20newsgroups_validation():
    raw = load_raw_datasets(validation_file=str(NEWSGROUPS / "validation.jsonl"))
    assert len(raw["validation"]) == 1130
    taxonomy = build_taxonomy(raw, taxonomy_file=str(NEWSGROUPS / "20newsgroups.taxonomy"))
    assert len(taxonomy) == 34
    assert set(build_taxonomy(raw).labels) <= set(taxonomy.labels)
    encoded = encode_labels(raw["validation"], taxonomy, source="validation")
    label_ids = encoded["label_ids"][:]
    assert all(len(ids) == len(labels) for ids, labels in zip(label_ids, raw["validation"]["labels"][:]))


def test_skip_empty_texts_drops_rows_instead_of_failing(tmp_path):
    path = tmp_path / "some_empty.jsonl"
    rows = [{"text": "kept", "labels": ["a"]}, {"text": "  ", "labels": ["a"]}, {"text": "also kept", "labels": ["b"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ValueError, match="row 2: empty text"):
        load_raw_datasets(train_file=str(path))
    raw = load_raw_datasets(train_file=str(path), skip_empty_texts=True)
    assert raw["train"]["text"] == ["kept", "also kept"]
