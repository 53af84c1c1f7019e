"""The label tree: parsing, validation, ancestor closure, multi-hot encoding and tree distances.

A `Taxonomy` is a forest of labels (the invisible root is not a label). Every label has an identifier
(e.g. ``"C152"``), an optional readable name (``"COMMENT/FORECASTS"``) and at most one parent.
Malformed trees raise `ValueError` naming the offending label when the taxonomy is built.

Names may repeat under different parents (Web of Science has ``Depression`` under both ``Medical`` and
``Psychology``; many taxonomies have an ``Other`` per branch). Identifiers stay unique: in trees read from label
paths or a HiAGM file, a name given to one label is its identifier, and a name given to several labels makes each
of them identified by its path of names (``"Medical > Depression"``) while its readable name stays the name.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

PATH_SEPARATOR = " > "


class Taxonomy:
    """A validated label forest.

    Args:
        labels: label identifiers, unique and non-empty.
        parents: for each label, the identifier of its parent or `None` for a top-level label.
        names: optional readable names, a mapping from identifier to name or a list aligned with `labels`.
            A label without a name is named by its identifier, or by the last part of a path identifier
            (``"Medical > Depression"`` under ``"Medical"`` is named ``"Depression"``).
    """

    def __init__(
        self,
        labels: Sequence[str],
        parents: Sequence[str | None],
        names: Mapping[str, str] | Sequence[str] | None = None,
    ):
        labels = list(labels)
        parents = list(parents)
        if len(labels) != len(parents):
            raise ValueError(f"taxonomy: {len(labels)} labels but {len(parents)} parents")
        label2id: dict[str, int] = {}
        for label in labels:
            if not isinstance(label, str) or not label.strip():
                raise ValueError(f"taxonomy: empty label name {label!r}")
            if label in label2id:
                raise ValueError(f"taxonomy: duplicate label {label!r}")
            label2id[label] = len(label2id)
        parent_ids = []
        for label, parent in zip(labels, parents):
            if parent is None:
                parent_ids.append(-1)
            elif parent not in label2id:
                raise ValueError(f"taxonomy: label {label!r} has unknown parent {parent!r}")
            elif parent == label:
                raise ValueError(f"taxonomy: label {label!r} is its own parent (cycle)")
            else:
                parent_ids.append(label2id[parent])

        self.labels: list[str] = labels
        self.parent_ids: list[int] = parent_ids
        self.label2id: dict[str, int] = label2id
        self.depths: list[int] = self._compute_depths()
        self.children: list[list[int]] = [[] for _ in labels]
        for child, parent in enumerate(parent_ids):
            if parent >= 0:
                self.children[parent].append(child)
        # Path of every label: its identifier when that already is the path, else the parent's path + identifier.
        self._parts: list[tuple[str, ...]] = [()] * len(labels)
        for i in self.topological_order():
            parent = parent_ids[i]
            prefix = self.path(parent) + PATH_SEPARATOR if parent >= 0 else ""
            local = labels[i][len(prefix):] if prefix and labels[i].startswith(prefix) else labels[i]
            self._parts[i] = (self._parts[parent] if parent >= 0 else ()) + (local,)
        self._path2id = {self.path(i): i for i in range(len(labels))}
        self._repeated_names = {name for name, count in Counter(parts[-1] for parts in self._parts).items() if count > 1}

        if names is None:
            names = {}
        if isinstance(names, Mapping):
            unknown = set(names) - set(label2id)
            if unknown:
                raise ValueError(f"taxonomy: names given for unknown labels {sorted(unknown)[:5]}")
            names = [names.get(label) for label in labels]
        else:
            names = list(names)
            if len(names) != len(labels):
                raise ValueError(f"taxonomy: {len(labels)} labels but {len(names)} names")
        names = [name or parts[-1] for name, parts in zip(names, self._parts)]
        for label, name in zip(labels, names):
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"taxonomy: label {label!r} has an empty readable name")
        self.names: list[str] = names

    def _compute_depths(self) -> list[int]:
        """Depth of every label (top level = 1); raises on a cycle."""
        depths = [0] * len(self.labels)
        for start in range(len(self.labels)):
            chain, node = [], start
            while node >= 0 and depths[node] == 0:
                if node in chain:
                    cycle = " -> ".join(self.labels[i] for i in chain[chain.index(node) :] + [node])
                    raise ValueError(f"taxonomy: cycle {cycle}")
                chain.append(node)
                node = self.parent_ids[node]
            base = depths[node] if node >= 0 else 0
            for offset, member in enumerate(reversed(chain), start=1):
                depths[member] = base + offset
        return depths

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_parents(
        cls, parents: Mapping[str, str | None], names: Mapping[str, str] | None = None
    ) -> Taxonomy:
        """Build from a ``{child: parent}`` map; top-level labels map to `None` (or ``"Root"``).

        Parents that never appear as keys are an error, so every label must be listed.
        """
        labels = list(parents)
        parent_list = [None if p in (None, "", "Root", "root") else p for p in parents.values()]
        return cls(labels, parent_list, names)

    @classmethod
    def from_file(cls, path: str | Path, names: Mapping[str, str] | None = None) -> Taxonomy:
        """Read a HiAGM ``.taxonomy`` file (``parent<TAB>child<TAB>child…``, first line ``Root<TAB>…``)
        or a JSON ``{child: parent}`` map (``.json``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except OSError as err:
            raise ValueError(f"{path}: cannot read taxonomy ({err.strerror})") from None
        if path.suffix == ".json":
            try:
                mapping = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(mapping, dict):
                raise ValueError(f"{path}: expected a JSON object {{child: parent}}")
            try:
                return cls.from_parents(mapping, names)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
        return cls._from_hiagm_lines(text.splitlines(), str(path), names)

    @classmethod
    def _from_hiagm_lines(cls, lines: Iterable[str], source: str, names: Mapping[str, str] | None) -> Taxonomy:
        """Parse ``parent<TAB>child…`` lines in any order; one line starts with ``Root`` (the top-level labels).

        A parent is named by a label listed once, or by the path of a repeated one (``Medical > Depression``);
        a repeated name that is also a top-level label refers to the top-level one when written alone.
        """
        listed: list[tuple[int, str | None, str]] = []  # (line, parent field, name) of every child listing
        root_line = None
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split("\t")]
            parent, children = fields[0], fields[1:]
            if parent.lower() == "root":
                if root_line is not None:
                    raise ValueError(f"{source}:{lineno}: a second 'Root' line (the first is line {root_line})")
                root_line, parent = lineno, None
            elif not parent:
                raise ValueError(f"{source}:{lineno}: empty parent name")
            if not children:
                raise ValueError(f"{source}:{lineno}: parent {parent or 'Root'!r} has no children")
            for child in children:
                if not child:
                    raise ValueError(f"{source}:{lineno}: empty label name")
                listed.append((lineno, parent, child))
        if not listed:
            raise ValueError(f"{source}: empty taxonomy file")
        if root_line is None:
            raise ValueError(f"{source}: no 'Root' line listing the top-level labels")
        first_listing: dict[tuple[str | None, str], int] = {}
        for lineno, field, name in listed:
            if (field, name) in first_listing:
                raise ValueError(
                    f"{source}:{lineno}: label {name!r} already listed under {field or 'Root'!r} on line "
                    f"{first_listing[field, name]}"
                )
            first_listing[field, name] = lineno

        by_name: dict[str, list[int]] = {}
        for k, (_, _, name) in enumerate(listed):
            by_name.setdefault(name, []).append(k)
        parent_of: list[int | None] = [-1 if field is None else None for _, field, _ in listed]
        first_line: dict[str, int] = {}
        for lineno, field, _ in listed:
            if field is not None:
                first_line.setdefault(field, lineno)

        def describe(k: int) -> str:
            lineno, field, _ = listed[k]
            return f"under {field or 'Root'!r} (line {lineno})"

        def named(field: str, lineno: int) -> int:
            """The listing a plain parent name refers to."""
            found = by_name.get(field)
            if not found:
                raise ValueError(f"{source}:{lineno}: parent {field!r} is not listed as a child on any line")
            top = [k for k in found if listed[k][1] is None]
            if len(found) == 1 or top:
                return (top or found)[0]
            raise ValueError(
                f"{source}:{lineno}: parent {field!r} is ambiguous, it is listed "
                f"{' and '.join(describe(k) for k in found[:3])}; write it as its path, e.g. "
                f"{listed[found[0]][1] + PATH_SEPARATOR + field!r}"
            )

        def walk(field: str, lineno: int) -> int | None:
            """The listing a parent path refers to, or None while a listing on the way has no known parent yet."""
            head, *rest = field.split(PATH_SEPARATOR)
            node = named(head, lineno)
            for depth, part in enumerate(rest, start=1):
                found = by_name.get(part, [])
                if any(parent_of[k] is None for k in found):
                    return None
                below = [k for k in found if parent_of[k] == node]
                if not below:
                    prefix = PATH_SEPARATOR.join([head, *rest[: depth - 1]])
                    raise ValueError(f"{source}:{lineno}: parent path {field!r}: no label {part!r} under {prefix!r}")
                node = below[0]
            return node

        fields = {field: None for field in first_line}  # parent field -> listing, resolved in passes
        while True:
            waiting = [field for field, k in fields.items() if k is None]
            for field in waiting:
                lineno = first_line[field]
                fields[field] = named(field, lineno) if field in by_name else walk(field, lineno)
            parent_of = [-1 if field is None else fields[field] for _, field, _ in listed]
            if not waiting or all(fields[field] is None for field in waiting):
                break
        unresolved = [field for field, k in fields.items() if k is None]
        if unresolved:
            field = unresolved[0]
            raise ValueError(f"{source}:{first_line[field]}: parent path {field!r} leads through itself (cycle)")

        # Name paths from the top, found by walking up; a walk that comes back to a listing on it is a cycle.
        paths: list[tuple[str, ...] | None] = [None] * len(listed)
        for start in range(len(listed)):
            chain, on_chain, node = [], {}, start
            while node >= 0 and paths[node] is None:
                if node in on_chain:
                    cycle = chain[on_chain[node]:] + [node]
                    raise ValueError(
                        f"{source}:{listed[node][0]}: cycle {' -> '.join(listed[k][2] for k in reversed(cycle))} "
                        f"(lines {', '.join(str(listed[k][0]) for k in reversed(cycle[1:]))})"
                    )
                on_chain[node] = len(chain)
                chain.append(node)
                node = parent_of[node]
            base = paths[node] if node >= 0 else ()
            for k in reversed(chain):
                base = paths[k] = base + (listed[k][2],)
        for k, path in enumerate(paths):
            name = path[-1]
            if name in path[:-1]:
                chain, node = [k], parent_of[k]
                while listed[node][2] != name:
                    chain.append(node)
                    node = parent_of[node]
                chain = [node, *reversed(chain)]
                raise ValueError(
                    f"{source}:{listed[k][0]}: cycle {' -> '.join(listed[j][2] for j in chain)}: {name!r} is listed "
                    f"below itself (lines {', '.join(str(listed[j][0]) for j in chain)})"
                )
        try:
            return cls._from_name_paths(paths, names)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_paths(cls, paths: Iterable[Sequence[str]], where: Callable[[int], str] | None = None) -> Taxonomy:
        """Derive a tree from root-to-node paths of names such as ``["comp", "comp.sys", "comp.sys.mac.hardware"]``.

        A name under several parents gives several labels identified by their paths (see the module docstring).
        A name that is a top-level label in one path and sits under another label elsewhere, or below itself, is
        refused: that is what label sets holding several paths look like when read as one path. `where(i)` says
        where path `i` comes from in error messages (default ``"path i+1"``).
        """
        where = where or (lambda index: f"path {index + 1}")
        nodes: dict[tuple[str, ...], int] = {}  # name path -> index of the first path holding it
        for index, path in enumerate(paths):
            path = tuple(path)
            for depth in range(1, len(path) + 1):
                nodes.setdefault(path[:depth], index)
        top = {node[0]: index for node, index in nodes.items() if len(node) == 1}
        for node, index in nodes.items():
            name = node[-1]
            if name in node[:-1]:
                raise ValueError(f"label {name!r} sits below itself in {PATH_SEPARATOR.join(node)!r} ({where(index)})")
            if len(node) > 1 and name in top:
                raise ValueError(
                    f"label {name!r} is a top-level label ({where(top[name])}) and also sits under {node[-2]!r} "
                    f"({where(index)})"
                )
        return cls._from_name_paths(list(nodes))

    @classmethod
    def _from_name_paths(cls, nodes: Sequence[tuple[str, ...]], names: Mapping[str, str] | None = None) -> Taxonomy:
        """A taxonomy of nodes given by their paths of names (every prefix is a node too): a name borne by one node
        is its identifier, a name borne by several makes each identified by its path."""
        count = Counter(node[-1] for node in nodes)
        ids = {node: node[-1] if count[node[-1]] == 1 else PATH_SEPARATOR.join(node) for node in nodes}
        return cls(list(ids.values()), [ids[node[:-1]] if len(node) > 1 else None for node in nodes], names)

    def extended_by(self, bigger: Taxonomy) -> Taxonomy:
        """This taxonomy with the labels of `bigger` it lacks appended, in `bigger`'s order: every label here keeps
        its id, identifier, parent and readable name (names `bigger` gives them are not taken), so a model's outputs
        for them stay in place. New labels may sit anywhere: new leaves, new inner nodes with new children, children
        of labels that were leaves.

        Raises a one-line `ValueError` when `bigger` drops a label or gives one a different parent.
        """
        missing = [label for label in self.labels if label not in bigger.label2id]
        if missing:
            raise ValueError(f"taxonomy: the bigger taxonomy lacks {len(missing)} of the {len(self)} labels it must "
                             f"keep, e.g. {missing[:3]} (labels can be added, not removed)")
        for label, parent in zip(self.labels, self.parent_ids):
            moved = bigger.parent_ids[bigger.label2id[label]]
            if (bigger.labels[moved] if moved >= 0 else None) != (self.labels[parent] if parent >= 0 else None):
                raise ValueError(
                    f"taxonomy: label {label!r} has parent {self.labels[parent] if parent >= 0 else None!r} but "
                    f"{bigger.labels[moved] if moved >= 0 else None!r} in the bigger taxonomy (labels keep their parent)")
        new = [j for j, label in enumerate(bigger.labels) if label not in self.label2id]
        parents = [bigger.parent_ids[j] for j in new]
        return Taxonomy(
            self.labels + [bigger.labels[j] for j in new],
            [self.labels[p] if p >= 0 else None for p in self.parent_ids]
            + [bigger.labels[p] if p >= 0 else None for p in parents],
            self.names + [bigger.names[j] for j in new],
        )

    def nearest_known(self, label_id: int, known: Container[int]) -> list[int]:
        """The `known` labels (ids, e.g. `range(count)`) that stand nearest to `label_id` in the tree: its siblings
        among them, else those at its depth, else all of them. A label added after training (`extended_by`) takes
        what it cannot learn from them."""
        parent = self.parent_ids[label_id]
        siblings = [j for j in (self.children[parent] if parent >= 0 else self.roots) if j in known and j != label_id]
        everyone = [j for j in range(len(self)) if j in known and j != label_id]
        level = [j for j in everyone if self.depths[j] == self.depths[label_id]]
        return siblings or level or everyone

    # ------------------------------------------------------------------ serialization

    def to_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "parents": [self.labels[p] if p >= 0 else None for p in self.parent_ids],
            "names": list(self.names),
        }

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self.labels)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Taxonomy({len(self)} labels, {self.num_levels} levels)"

    @property
    def roots(self) -> list[int]:
        return [i for i, p in enumerate(self.parent_ids) if p < 0]

    @property
    def num_levels(self) -> int:
        return max(self.depths, default=0)

    def topological_order(self) -> list[int]:
        """Label ids ordered so that every parent comes before its children."""
        return sorted(range(len(self)), key=lambda i: self.depths[i])

    def ancestors(self, label_id: int) -> list[int]:
        """Ids from the top-level ancestor down to the label itself."""
        chain = []
        while label_id >= 0:
            chain.append(label_id)
            label_id = self.parent_ids[label_id]
        return chain[::-1]

    def per_label(self, level_values: Sequence[float]) -> list[float]:
        """One value per label from one per level (depth 1 first), e.g. decision thresholds; a label deeper than the
        values given takes the deepest one."""
        return [level_values[min(depth, len(level_values)) - 1] for depth in self.depths]

    def path(self, label_id: int, separator: str = PATH_SEPARATOR) -> str:
        """The label's path from the top (``"comp > comp.sys"``, ``"Medical > Depression"``)."""
        return separator.join(self._parts[label_id])

    def label_ids(self, labels: Iterable[str]) -> list[int]:
        """Ids of one example's labels, in order.

        A label is an identifier, a path (``"Medical > Depression"``) or a name placed by the example's other
        labels: in ``["Medical", "Depression"]``, a path or a set in any order, it is the ``Depression`` under
        ``Medical``. Placement under the example's labels comes first, then identifiers of names borne by one label.
        """
        labels = list(labels)
        ids: dict[int, int] = {}
        pending = list(range(len(labels)))
        while pending:
            found = {}
            for k in pending:
                under = {self._path2id.get(self.path(i) + PATH_SEPARATOR + labels[k]) for i in ids.values()} - {None}
                if len(under) > 1:
                    paths = sorted(self.path(i) for i in under)
                    raise ValueError(f"label {labels[k]!r} sits under several of the example's labels: {paths[:3]}")
                if under:
                    found[k] = under.pop()
            if not found:  # nothing more to place: take identifiers and paths, those of repeated names last
                known = {k: self.label2id.get(labels[k], self._path2id.get(labels[k])) for k in pending}
                known = {k: i for k, i in known.items() if i is not None}
                found = {k: i for k, i in known.items() if labels[k] not in self._repeated_names} or known
            if not found:
                label = labels[pending[0]]
                bearers = [self.path(i) for i, parts in enumerate(self._parts) if parts[-1] == label]
                hint = f"; it names {len(bearers)} labels ({', '.join(bearers[:3])}), give its parent too" if bearers else ""
                raise ValueError(f"label {label!r} is not in the taxonomy ({len(self)} labels){hint}")
            ids.update(found)
            pending = [k for k in pending if k not in found]
        return [ids[k] for k in range(len(labels))]

    def label_set(self, labels: Iterable[str], add_ancestors: bool = True) -> list[int]:
        """Sorted indices of a label set (see `label_ids`), with every ancestor when `add_ancestors`."""
        ids = self.label_ids(labels)
        return sorted({a for i in ids for a in self.ancestors(i)} if add_ancestors else set(ids))

    def encode(self, labels: Iterable[str], add_ancestors: bool = True) -> list[float]:
        """Multi-hot vector of a label set (`label_set`)."""
        vector = [0.0] * len(self)
        for i in self.label_set(labels, add_ancestors):
            vector[i] = 1.0
        return vector

    def tree_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense pairwise tree structure over the labels, with a virtual root at index ``L`` above the top level.

        Returns:
            lca: ``[L, L]`` index of the lowest common ancestor (``L`` = virtual root).
            distance: ``[L, L]`` number of tree edges on the shortest path (through the root if needed).
        """
        n = len(self)
        depth = np.asarray(self.depths + [0], dtype=np.int64)
        # chains[i, d] = ancestor of i at depth d + 1, or -1 below the label's own depth.
        chains = np.full((n, max(self.num_levels, 1)), -1, dtype=np.int64)
        for i in range(n):
            chain = self.ancestors(i)
            chains[i, : len(chain)] = chain
        # Two chains agree on a prefix, so the LCA depth is the number of agreeing levels.
        lca_depth = ((chains[:, None, :] == chains[None, :, :]) & (chains[:, None, :] >= 0)).sum(-1)  # [L, L]
        lca = np.where(lca_depth > 0, chains[np.arange(n)[:, None], np.maximum(lca_depth - 1, 0)], n)
        distance = depth[:n, None] + depth[None, :n] - 2 * lca_depth
        return lca, distance

    def ancestor_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """`(node, ancestor)` index pairs, each label with itself, its ancestors and the virtual root ``L``."""
        rows, cols = [], []
        for i in range(len(self)):
            chain = self.ancestors(i) + [len(self)]
            rows += [i] * len(chain)
            cols += chain
        rows.append(len(self))
        cols.append(len(self))
        return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)

    def neighbour_pairs(
        self, max_hops: int, max_siblings: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Label pairs at most `max_hops` tree edges apart (the virtual root joins the top-level labels), self pairs
        included, as arrays `(source, target, lca, distance)` sorted by source, then target; `lca == L` is the
        virtual root.

        Walks up from every label at once and, from each ancestor, down into the branches not yet visited, with
        array operations whose size is the number of pairs, never ``L²``. With `max_siblings = S`, a family of more
        than ``S + 1`` children is entered sideways only through the ``S`` siblings nearest to the branch the walk
        came up from, cyclically in the family's order (``⌈S/2⌉`` after it, ``⌊S/2⌋`` before): otherwise every
        sibling pairs with every other and the pair count grows with the square of the fan-out. Families up to
        ``S + 1`` children keep every pair. A label's own descendants are always all kept (each label has at most
        `max_hops` ancestors in range, so they add at most ``max_hops · L`` pairs).
        """
        n = len(self)
        # parent of every label, of the virtual root n and of the sentinel n + 1 "above the root"
        parent = np.asarray([p if p >= 0 else n for p in self.parent_ids] + [n + 1, n + 1], dtype=np.int64)
        by_parent = np.argsort(parent[:n], kind="stable")  # children grouped by parent, in taxonomy order
        fan_out = np.bincount(parent[:n], minlength=n + 1)  # [L + 1], the virtual root last
        first_child = np.concatenate([[0], np.cumsum(fan_out)])[:-1]
        rank = np.empty(n, dtype=np.int64)  # position of each label among its parent's children
        rank[by_parent] = np.arange(n) - first_child[parent[by_parent]]
        width = max_siblings or 0
        offsets = np.asarray([o for o in range(-(width // 2), (width + 1) // 2 + 1) if o], dtype=np.int64)

        def children(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Every child of each of `nodes`, and the index in `nodes` of its parent."""
            counts = fan_out[nodes]
            rows = np.repeat(np.arange(len(nodes)), counts)
            starts = np.repeat(first_child[nodes] - np.cumsum(counts) + counts, counts)
            return by_parent[np.arange(len(rows)) + starts], rows

        parts = []  # (source, target, lca, distance) per ring of the walk
        source, top, came_from = np.arange(n), np.arange(n), np.full(n, -1)
        for up in range(max_hops + 1):
            inside = top <= n  # the walk has not gone past the virtual root
            source, top, came_from = source[inside], top[inside], came_from[inside]
            real = top < n
            parts.append((source[real], top[real], top[real], np.full(real.sum(), up)))
            if up < max_hops:
                if up == 0:  # down from the label itself: all of its descendants
                    node, rows = children(top)
                else:  # sideways into the siblings of the branch the walk came up from
                    wide = np.zeros(len(top), dtype=bool) if max_siblings is None else fan_out[top] > max_siblings + 1
                    node, rows = children(top[~wide])
                    rows = np.flatnonzero(~wide)[rows]
                    other = node != came_from[rows]
                    node, rows = node[other], rows[other]
                    centre = np.repeat(np.flatnonzero(wide), len(offsets))
                    family = fan_out[top[centre]]
                    position = (rank[came_from[centre]] + np.tile(offsets, wide.sum())) % family
                    node = np.concatenate([node, by_parent[first_child[top[centre]] + position]])
                    rows = np.concatenate([rows, centre])
                ring = [source[rows], node, top[rows]]
                for down in range(1, max_hops - up + 1):
                    parts.append((*ring, np.full(len(node), up + down)))
                    if down < max_hops - up:
                        node, rows = children(ring[1])
                        ring = [ring[0][rows], node, ring[2][rows]]
            top, came_from = parent[top], top
        pairs = [np.concatenate(column).astype(np.int64) for column in zip(*parts)]
        order = np.lexsort((pairs[1], pairs[0]))
        return tuple(x[order] for x in pairs)
