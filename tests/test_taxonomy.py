import numpy as np
import pytest

from modeling_htla import Taxonomy


def write(tmp_path, text, name="labels.taxonomy"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_hiagm_file_and_queries(tmp_path):
    path = write(tmp_path, "Root\tcomp\trec\ncomp\tcomp.sys\ncomp.sys\tcomp.sys.mac\n")
    tax = Taxonomy.from_file(path)
    assert tax.labels == ["comp", "rec", "comp.sys", "comp.sys.mac"]
    assert tax.depths == [1, 1, 2, 3]
    assert tax.path(3) == "comp > comp.sys > comp.sys.mac"
    assert tax.encode(["comp.sys.mac"]) == [1.0, 0.0, 1.0, 1.0]
    assert tax.encode(["comp.sys.mac"], add_ancestors=False) == [0.0, 0.0, 0.0, 1.0]
    assert tax.decode([0.9, 0.1, 0.7, 0.2]) == ["comp", "comp.sys"]
    assert tax.is_consistent([0, 2]) and not tax.is_consistent([3])
    saved = tmp_path / "copy.taxonomy"
    tax.save(saved)
    assert Taxonomy.from_file(saved) == tax


def test_real_20newsgroups_taxonomy():
    path = "../shared/data/20newsgroups/20newsgroups.taxonomy"
    import os

    if not os.path.exists(path):
        pytest.skip("shared data not beside the repository")
    tax = Taxonomy.from_file(path)
    assert len(tax) == 34 and tax.num_levels == 3
    assert sum(d == 1 for d in tax.depths) == 7


def test_json_map_and_names(tmp_path):
    path = write(tmp_path, '{"top": null, "child": "top"}', "labels.json")
    tax = Taxonomy.from_file(path, names={"child": "Readable child"})
    assert tax.names == ["top", "Readable child"]
    assert tax.parent_ids == [-1, 0]


def test_from_paths():
    tax = Taxonomy.from_paths([["a", "a1"], ["a", "a2"], ["b"]])
    assert tax.labels == ["a", "a1", "a2", "b"] and tax.parent_ids == [-1, 0, 0, -1]
    with pytest.raises(ValueError, match="under both"):
        Taxonomy.from_paths([["a", "x"], ["b", "x"]])


@pytest.mark.parametrize(
    "parents, message",
    [
        ({"a": "b", "b": "a"}, "cycle"),
        ({"a": "a"}, "cycle"),
        ({"a": None, "b": "zzz"}, "unknown parent 'zzz'"),
        ({"": None}, "empty label"),
    ],
)
def test_malformed_parent_maps(parents, message):
    with pytest.raises(ValueError, match=message):
        Taxonomy.from_parents(parents)


def test_duplicate_and_empty_names():
    with pytest.raises(ValueError, match="duplicate label 'a'"):
        Taxonomy(["a", "a"], [None, None])
    with pytest.raises(ValueError, match="empty readable name"):
        Taxonomy(["a"], [None], names=["   "])


@pytest.mark.parametrize(
    "text, message",
    [
        ("Root\ta\tb\na\tc\nb\tc\n", r":3: label 'c' already listed on line 2"),
        ("Root\ta\ta\n", r":1: label 'a' already listed"),
        ("a\tb\n", r":1: first line must start with 'Root'"),
        ("Root\ta\nx\ty\n", r":2: parent 'x' was not listed"),
        ("Root\ta\t\tb\n", r":1: empty label name"),
        ("", "empty taxonomy file"),
    ],
)
def test_malformed_hiagm_files_name_the_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        Taxonomy.from_file(path)
    assert str(path) in str(info.value)


def test_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(ValueError, match="cannot read taxonomy"):
        Taxonomy.from_file(tmp_path / "missing.taxonomy")
    bad = tmp_path / "bad.taxonomy"
    bad.write_bytes(b"Root\t\xff\xfe\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        Taxonomy.from_file(bad)


def test_tree_arrays_distances(small_taxonomy):
    tax = small_taxonomy  # a, b, a1, a2, b1, a11, a12
    lca, distance = tax.tree_arrays()
    ids = tax.label2id
    assert np.all(np.diag(distance) == 0)
    assert distance[ids["a"], ids["a1"]] == 1  # parent-child
    assert distance[ids["a1"], ids["a2"]] == 2  # siblings
    assert distance[ids["a"], ids["b"]] == 2  # top-level siblings meet at the root
    assert distance[ids["a11"], ids["b1"]] == 5
    assert lca[ids["a11"], ids["a2"]] == ids["a"]
    assert lca[ids["a11"], ids["b1"]] == len(tax)  # the virtual root
    assert (distance == distance.T).all()
    rows, cols = tax.ancestor_pairs()
    assert sorted(cols[rows == ids["a11"]].tolist()) == sorted([ids["a11"], ids["a1"], ids["a"], len(tax)])
