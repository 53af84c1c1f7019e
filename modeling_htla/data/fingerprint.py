"""Cache fingerprints for the `datasets` maps and selects of this package: a hash of the few values that decide the
result, where `datasets` would hash the mapped closures or long index lists (slow)."""

from __future__ import annotations

import hashlib
import json


def fingerprint(*parts) -> str:
    """A deterministic fingerprint of JSON-able `parts`."""
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()[:16]
