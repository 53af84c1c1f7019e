"""htla: hierarchical text classification with HTLA (Kumar & Toshniwal, ECML-PKDD 2024) on Hugging Face."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from configuration_htla import HTLAConfig

from .default_encoder import DEFAULT_ENCODER_NAME, resolve_encoder
from .loss import bce_loss, htla_loss, tla_loss
from .modeling import HTLAModel, HTLAOutput, HTLAPreTrainedModel
from .taxonomy import Taxonomy
from .trainer import HTLATrainer, HTLATrainingArguments

AutoConfig.register(HTLAConfig.model_type, HTLAConfig, exist_ok=True)
AutoModel.register(HTLAConfig, HTLAModel, exist_ok=True)
AutoModelForSequenceClassification.register(HTLAConfig, HTLAModel, exist_ok=True)

__all__ = [
    "DEFAULT_ENCODER_NAME",
    "HTLAConfig",
    "HTLAModel",
    "HTLAOutput",
    "HTLAPreTrainedModel",
    "HTLATrainer",
    "HTLATrainingArguments",
    "Taxonomy",
    "bce_loss",
    "htla_loss",
    "resolve_encoder",
    "tla_loss",
]
