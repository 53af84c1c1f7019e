import numpy as np
import pytest

from conftest import NEWSGROUPS_TAXONOMY, SHARED_DATA, labels_of
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
    assert tax.label_set(["comp.sys.mac"]) == [0, 2, 3] and tax.label_set(["comp.sys.mac"], add_ancestors=False) == [3]


NEWSGROUPS_FILE = SHARED_DATA / "20newsgroups" / "20newsgroups.taxonomy"


@pytest.mark.skipif(not NEWSGROUPS_FILE.is_file(), reason=f"shared data not beside the repository ({NEWSGROUPS_FILE})")
def test_real_20newsgroups_taxonomy():
    tax = Taxonomy.from_file(NEWSGROUPS_FILE)
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
    assert tax.names == tax.labels


def test_a_name_under_several_parents_is_identified_by_its_path():
    """Web of Science: 'Depression' is an area of both 'Psychology' and 'Medical'."""
    paths = [["Psychology", "Depression"], ["Medical", "Depression"], ["Medical", "Other", "Misc"],
             ["CS", "Other", "Misc"], ["CS", "Other", "Compilers"], ["Medical", "Cancer"]]
    tax = Taxonomy.from_paths(paths)
    assert tax.labels == ["Psychology", "Psychology > Depression", "Medical", "Medical > Depression",
                          "Medical > Other", "Medical > Other > Misc", "CS", "CS > Other", "CS > Other > Misc",
                          "Compilers", "Cancer"]
    assert tax.names == ["Psychology", "Depression", "Medical", "Depression", "Other", "Misc", "CS", "Other", "Misc",
                         "Compilers", "Cancer"]
    assert [tax.path(i) for i in range(len(tax))] == [" > ".join(p[:d]) for p, d in [
        (paths[0], 1), (paths[0], 2), (paths[1], 1), (paths[1], 2), (paths[2], 2), (paths[2], 3), (paths[3], 1),
        (paths[3], 2), (paths[3], 3), (paths[4], 3), (paths[5], 2)]]
    ids = tax.label2id
    # A path, a set in any order, or identifiers: the repeated name is placed by the example's other labels.
    for labels in (["Medical", "Depression"], ["Depression", "Medical"], ["Medical > Depression"]):
        assert tax.label_ids(labels)[-1 if labels[0] == "Medical" else 0] == ids["Medical > Depression"]
    assert tax.label_ids(["CS", "Other", "Misc"]) == [ids["CS"], ids["CS > Other"], ids["CS > Other > Misc"]]
    # A repeated name that is also a top-level label: the example's own labels decide, in any order.
    top = Taxonomy(["Other", "A", "A > Other"], [None, None, "A"])
    assert top.names == ["Other", "A", "Other"]
    assert top.label_ids(["Other", "A"]) == [2, 1] and top.label_ids(["A", "Other"]) == [1, 2]
    assert top.label_ids(["Other"]) == [0]
    assert labels_of(tax, tax.encode(["Misc", "Other", "Medical"])) == ["Medical", "Medical > Other", "Medical > Other > Misc"]
    with pytest.raises(ValueError, match=r"label 'Depression' is not in the taxonomy .*Psychology > Depression"):
        tax.encode(["Depression"])
    with pytest.raises(ValueError, match="sits under several"):
        tax.encode(["Medical", "Psychology", "Depression"])
    # The identifiers survive the config round trip and the HiAGM file.
    assert Taxonomy(**tax.to_dict()) == tax


@pytest.mark.parametrize(
    "paths, message",
    [
        ([["CCAT", "C15", "GCAT"], ["GCAT", "G15"]], r"label 'GCAT' is a top-level label \(path 2\) and also sits "
                                                       r"under 'C15' \(path 1\)"),
        ([["a", "b", "a"]], r"label 'a' sits below itself in 'a > b > a' \(path 1\)"),
    ],
)
def test_paths_that_look_like_label_sets_are_refused(paths, message):
    with pytest.raises(ValueError, match=message):
        Taxonomy.from_paths(paths)


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


def test_hiagm_lines_in_any_order(tmp_path):
    top_down = Taxonomy.from_file(write(tmp_path, "Root\tA\tB\nA\tA1\nA1\tx\n", "a.taxonomy"))
    shuffled = Taxonomy.from_file(write(tmp_path, "A1\tx\nRoot\tA\tB\nA\tA1\n", "b.taxonomy"))
    assert shuffled.path(shuffled.label2id["x"]) == "A > A1 > x"
    assert {label: shuffled.path(i) for i, label in enumerate(shuffled.labels)} == {
        label: top_down.path(i) for i, label in enumerate(top_down.labels)}
    issue = Taxonomy.from_file(write(tmp_path, "Root\tA\tB\nA1\tx\nA\tA1\n", "c.taxonomy"))
    assert issue.ancestors(issue.label2id["x"]) == [issue.label2id["A"], issue.label2id["A1"], issue.label2id["x"]]


def test_hiagm_repeated_names_and_paths_as_parents(tmp_path):
    text = ("Root\tMedical\tPsychology\tOther\nMedical\tDepression\tOther\nPsychology\tDepression\n"
            "Other\tMisc\nMedical > Other\tRare\n")
    tax = Taxonomy.from_file(write(tmp_path, text))
    assert tax.labels == ["Medical", "Psychology", "Other", "Medical > Depression", "Medical > Other",
                          "Psychology > Depression", "Misc", "Rare"]
    assert tax.names == ["Medical", "Psychology", "Other", "Depression", "Other", "Depression", "Misc", "Rare"]
    assert tax.path(tax.label2id["Rare"]) == "Medical > Other > Rare"
    assert tax.path(tax.label2id["Misc"]) == "Other > Misc"  # alone, a repeated top-level name is the top-level one


@pytest.mark.parametrize(
    "text, message",
    [
        ("Root\ta\tb\na\tc\tc\n", r":2: label 'c' already listed under 'a' on line 2"),
        ("Root\ta\ta\n", r":1: label 'a' already listed"),
        ("a\tb\n", r"no 'Root' line"),
        ("Root\ta\nRoot\tb\n", r":2: a second 'Root' line \(the first is line 1\)"),
        ("Root\ta\nx\ty\n", r":2: parent 'x' is not listed as a child on any line"),
        ("Root\ta\t\tb\n", r":1: empty label name"),
        ("", "empty taxonomy file"),
        # a real cycle: b and c are each listed once, under each other
        ("Root\ta\nb\tc\nc\tb\n", r":2: cycle c -> b -> c \(lines 2, 3\)"),
        ("Root\tsport\nsport\tfootball\nfootball\tsport\n",
         r":3: cycle sport -> football -> sport: 'sport' is listed below itself \(lines 1, 2, 3\)"),
        ("Root\tA\tB\nA\tx\nB\tx\nx\ty\n", r":4: parent 'x' is ambiguous, it is listed under 'A' \(line 2\) "
                                             r"and under 'B' \(line 3\); write it as its path, e.g. 'A > x'"),
        ("Root\tA\nA > z\ty\n", r":2: parent path 'A > z': no label 'z' under 'A'"),
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


def k_hop_pairs(tax, hops):
    """`{(i, j): (lca, distance)}` for every pair at most `hops` apart, from the dense tree arrays."""
    lca, distance = tax.tree_arrays()
    rows, cols = np.nonzero(distance <= hops)
    return {(i, j): (lca[i, j], distance[i, j]) for i, j in zip(rows.tolist(), cols.tolist())}


def pair_dict(pairs):
    source, target, lca, distance = (x.tolist() for x in pairs)
    return {(i, j): (a, d) for i, j, a, d in zip(source, target, lca, distance)}


@pytest.mark.parametrize("hops", [1, 2, 3, 4])
def test_neighbour_pairs_below_the_sibling_bound_are_the_k_hop_neighbourhood(tmp_path, hops):
    # 20 Newsgroups (34 labels, fan-out <= 7) keeps exactly the pairs it had before the bound existed.
    tax = Taxonomy.from_file(write(tmp_path, NEWSGROUPS_TAXONOMY))
    assert len(tax) == 34
    for max_siblings in (None, 6, 32):
        pairs = tax.neighbour_pairs(hops, max_siblings)
        assert pair_dict(pairs) == k_hop_pairs(tax, hops)
        assert len(pairs[0]) == len(pair_dict(pairs))  # no pair twice
        assert (np.lexsort((pairs[1], pairs[0])) == np.arange(len(pairs[0]))).all()  # CSR order
    # fan-out 7 is one above a bound of 5 siblings: the root's family is cut, nothing else changes
    cut = pair_dict(tax.neighbour_pairs(hops, 5))
    assert set(cut) < set(k_hop_pairs(tax, hops)) or hops == 1
    assert {pair for pair, (lca, _) in k_hop_pairs(tax, hops).items() if lca != len(tax)} <= set(cut)


def test_wide_families_keep_a_bounded_window_of_siblings():
    kids = 1000
    tax = Taxonomy(["a", "b"] + [f"a{k}" for k in range(kids)] + ["b0"], [None, None] + ["a"] * kids + ["b"])
    source, target, lca, distance = tax.neighbour_pairs(2, max_siblings=4)
    a0, a1, a2, last = (tax.label2id[x] for x in ("a0", "a1", "a2", f"a{kids - 1}"))
    siblings = sorted(target[(source == a0) & (distance == 2)].tolist())
    assert siblings == sorted([a1, a2, last, last - 1])  # two after, two before, cyclically
    assert sorted(target[(source == a1) & (distance == 2)].tolist()) == sorted([a0, a2, a2 + 1, last])
    # the parent still reaches every child, and the pair count is linear in the fan-out, not quadratic
    assert sorted(target[(source == tax.label2id["a"]) & (distance == 1)].tolist()) == list(range(2, 2 + kids))
    assert len(source) < 8 * len(tax)
    pairs = set(zip(source.tolist(), target.tolist()))
    assert all((j, i) in pairs for i, j in pairs)  # an even bound gives a symmetric pair set
    assert set(pair_dict((source, target, lca, distance)).items()) <= set(k_hop_pairs(tax, 2).items())
    odd = tax.neighbour_pairs(2, max_siblings=3)
    assert sorted(odd[1][(odd[0] == a1) & (odd[3] == 2)].tolist()) == sorted([a0, a2, a2 + 1])  # 1 before, 2 after
    none = tax.neighbour_pairs(2, max_siblings=0)
    assert not ((none[3] == 2) & (none[2] == tax.label2id["a"])).any()  # siblings only through their parent
