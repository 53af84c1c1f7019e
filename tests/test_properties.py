"""Property-based tests (hypothesis) of the taxonomy parser, label encoding and the data loader."""

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modeling_htla import Taxonomy
from modeling_htla.data import encode_labels, load_raw_datasets

from conftest import labels_of


@st.composite
def trees(draw):
    """A random forest: label i's parent is None or one of the labels before it."""
    size = draw(st.integers(1, 25))
    parents = [None]
    for i in range(1, size):
        parents.append(draw(st.one_of(st.none(), st.integers(0, i - 1))))
    labels = [f"L{i}" for i in range(size)]
    return Taxonomy(labels, [None if p is None else labels[p] for p in parents])


@given(trees(), st.data())
def test_encoding_is_the_ancestor_closure(tax, data):
    chosen = data.draw(st.sets(st.sampled_from(tax.labels), max_size=5))
    closure = set()
    for label in chosen:
        node = tax.label2id[label]
        while node >= 0:  # walk to the top independently of Taxonomy.ancestors
            closure.add(tax.labels[node])
            node = tax.parent_ids[node]
    vector = tax.encode(chosen)
    assert {tax.labels[i] for i, v in enumerate(vector) if v == 1.0} == closure
    assert set(labels_of(tax, tax.encode(chosen, add_ancestors=False))) == chosen


def reference_lca(tax: Taxonomy, i: int, j: int) -> int:
    """The lowest common ancestor of i and j (a label is its own ancestor; `len(tax)` is the virtual root above the
    top-level labels), found by walking i's parents and stopping at the first one on j's chain of parents."""
    above_j = {j}
    node = j
    while tax.parent_ids[node] >= 0:
        node = tax.parent_ids[node]
        above_j.add(node)
    node = i
    while node not in above_j:
        node = tax.parent_ids[node]
        if node < 0:
            return len(tax)
    return node


# Two cousins below a shared grandparent, and cousins of unequal depth: the cases a wrong LCA depth gets wrong.
COUSINS = Taxonomy(["r", "a", "b", "a1", "b1", "b11", "s"], [None, "r", "r", "a", "b", "b1", None])


@given(trees())
@example(COUSINS)
def test_distances_are_path_lengths_through_the_lowest_common_ancestor(tax):
    """`tree_arrays` against an LCA found by walking parents: `lca` is that label (or the virtual root) and
    `d(i, j) = depth_i + depth_j - 2 depth(lca)`, with depth 0 for the virtual root. Three other tests take these
    arrays as their reference."""
    lca, distance = tax.tree_arrays()
    n = len(tax)
    for i in range(n):
        for j in range(n):
            top = reference_lca(tax, i, j)
            top_depth = 0 if top == n else tax.depths[top]
            assert lca[i, j] == top, (i, j)
            assert distance[i, j] == tax.depths[i] + tax.depths[j] - 2 * top_depth, (i, j)


@given(trees())
def test_distances_are_a_tree_metric(tax):
    _, distance = tax.tree_arrays()
    n = len(tax)
    for i in range(n):
        assert distance[i, i] == 0
        parent = tax.parent_ids[i]
        if parent >= 0:
            assert distance[i, parent] == 1
        else:
            assert all(distance[i, j] == tax.depths[j] + 1 for j in range(n) if j != i and tax.parent_ids[j] < 0)
    assert (distance == distance.T).all()


@given(st.text(alphabet=st.sampled_from("Rootab\t\n \x00é"), max_size=80))
def test_any_taxonomy_text_parses_or_raises_value_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("tax") / "fuzz.taxonomy"
    path.write_text(text, encoding="utf-8")
    try:
        tax = Taxonomy.from_file(path)
    except ValueError as err:
        assert str(path) in str(err)
    else:
        assert len(tax) > 0 and all(label.strip() for label in tax.labels)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(st.sampled_from(["text", "labels", "other"]), json_values, max_size=3),
                min_size=1, max_size=4))
@example(rows=[{"text": None, "labels": {"": None, "\x00": None}}])  # object keys Arrow reads as duplicates
@example(rows=[{"text": "x", "labels": [{"a": 1}]}])
def test_any_jsonl_loads_or_raises_value_error(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("data") / "fuzz.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    tax = Taxonomy.from_parents({"a": None, "b": "a"})
    try:
        raw = load_raw_datasets(train_file=str(path))
        encoded = encode_labels(raw["train"], tax)
    except ValueError as err:
        assert "fuzz.jsonl" in str(err) or "train" in str(err)
    else:
        for row, ids in zip(encoded["labels"], encoded["label_ids"]):
            assert [tax.labels[i] for i in ids] == [label for label, v in zip(tax.labels, tax.encode(row)) if v]


@settings(max_examples=60, deadline=None)
@given(trees(), st.integers(1, 4), st.one_of(st.none(), st.integers(0, 4)))
def test_neighbour_pairs_are_the_k_hop_pairs_with_a_sibling_window(tax, hops, max_siblings):
    """Against a check written from the definition: the dense tree distance, and for a path that turns inside a
    family wider than `max_siblings + 1`, the cyclic position of the two branches it joins."""
    lca, distance = tax.tree_arrays()
    n = len(tax)
    families = [tax.children[p] if p < n else tax.roots for p in range(n + 1)]

    def branch(i, top):  # the child of `top` on the way up from i
        chain = tax.ancestors(i)
        return chain[0] if top == n else chain[chain.index(top) + 1]

    def kept(i, j):
        top = lca[i, j]
        if distance[i, j] > hops or top in (i, j) or max_siblings is None or len(families[top]) <= max_siblings + 1:
            return distance[i, j] <= hops
        family = families[top]
        step = (family.index(branch(j, top)) - family.index(branch(i, top))) % len(family)
        return step <= (max_siblings + 1) // 2 or len(family) - step <= max_siblings // 2

    expected = {(i, j): (lca[i, j], distance[i, j]) for i in range(n) for j in range(n) if kept(i, j)}
    source, target, lcas, distances = tax.neighbour_pairs(hops, max_siblings)
    got = {(i, j): (a, d) for i, j, a, d in zip(source.tolist(), target.tolist(), lcas.tolist(), distances.tolist())}
    assert got == expected and len(source) == len(got)
