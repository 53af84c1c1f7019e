"""Taxonomy shapes for the scaling benchmarks, named by a short spec string:

- `icd10` (the full ICD-10-CM tree, 7 levels) or `icd10:D` (cut to D levels, e.g. `icd10:2` = chapter > block);
- `AxB`: A top-level labels with B children each (`10x1000`, `1x50000`);
- `tree:N` or `tree:N:K`: N labels filled breadth-first with K children per node (default 8);
- `random:N`: a random tree of N labels, each attached to the virtual root or an earlier label with probability
  proportional to 1 + its number of children (seeded), so fan-outs are heavy-tailed and some families are wide;
- a path to a HiAGM `.taxonomy` or JSON file.
"""

from __future__ import annotations

import random


def build_taxonomy(spec: str):
    """The `Taxonomy` named by `spec` (see the module docstring)."""
    from modeling_htla import Taxonomy

    kind, _, rest = spec.partition(":")
    if kind == "icd10":
        from modeling_htla.data import load_icd10cm

        return load_icd10cm(depth=int(rest or 7), validation_fraction=0, test_fraction=0)[1]
    if kind == "tree":
        size, _, fan = rest.partition(":")
        size, fan = int(size), int(fan or 8)
        parents = [None if i < fan else f"l{(i - fan) // fan}" for i in range(size)]
        return Taxonomy([f"l{i}" for i in range(size)], parents)
    if kind == "random":
        rng, urn, parents = random.Random(0), [None], []
        for i in range(int(rest)):
            parent = rng.choice(urn)
            parents.append(parent)
            urn += [f"r{i}", parent]  # the new label, and one more chance for its parent
        return Taxonomy([f"r{i}" for i in range(len(parents))], parents)
    if "x" in spec and spec.replace("x", "").isdigit():
        tops, children = (int(x) for x in spec.split("x"))
        labels = [f"t{t}" for t in range(tops)] + [f"t{t}.{c}" for t in range(tops) for c in range(children)]
        return Taxonomy(labels, [None] * tops + [f"t{t}" for t in range(tops) for _ in range(children)])
    return Taxonomy.from_file(spec)


def fan_out(taxonomy) -> int:
    """Largest number of children of one node, the virtual root's top-level labels included."""
    return max([len(taxonomy.roots)] + [len(c) for c in taxonomy.children])
