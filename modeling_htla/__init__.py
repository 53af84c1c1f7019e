"""htla: hierarchical text classification with HTLA (Kumar & Toshniwal, ECML-PKDD 2024) on Hugging Face."""

from configuration_htla import HTLAConfig

from .default_encoder import DEFAULT_ENCODER_NAME, resolve_encoder
from .loss import bce_loss, htla_loss, tla_loss
from .modeling import HTLAModel, HTLAOutput, HTLAPreTrainedModel
from .taxonomy import Taxonomy

__all__ = [
    "DEFAULT_ENCODER_NAME",
    "HTLAConfig",
    "HTLAModel",
    "HTLAOutput",
    "HTLAPreTrainedModel",
    "Taxonomy",
    "bce_loss",
    "htla_loss",
    "resolve_encoder",
    "tla_loss",
]
