"""HTLA: text encoder + GPTrans label encoder, scored by both a free linear classifier and the scaled cosine between
text and label features (`fusion="hybrid"`, what `from_encoder` and `run_htc.py` build), by that cosine alone
(`fusion="dot"`), or fused by addition and scored by one shared linear classifier (`fusion="add"`, the paper)."""

from __future__ import annotations

from dataclasses import dataclass

import json
import math
import os
import shutil
import tempfile

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from torch.autograd.function import once_differentiable
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.logging import tqdm

from configuration_htla import HTLAConfig

from .default_encoder import resolve_encoder
from .export import write_remote_code
from .graph_encoder import LabelGraphEncoder, LabelTree
from .loss import cosine_similarity, htla_loss, select_negatives
from .positions import cut_to_positions, position_limit
from .taxonomy import Taxonomy


@dataclass
class HTLAOutput(ModelOutput):
    """Outputs of [`HTLAModel`].

    Args:
        loss: `BCE + λ·TLA`, when `labels` are given.
        logits: `[B, L]` one score per taxonomy label (apply a sigmoid for probabilities).
        bce_loss: the BCE part of `loss`.
        tla_loss: the TLA part of `loss` (before λ), 0 when TLA is off.
        text_embeds: `[B, H]` text features `h` (after dropout).
        label_embeds: `[L, H]` label features `F` from GPTrans, `None` for the flat variant. In a training step that
            recomputes only some labels (`graph_labels_per_step`), the kept features the step started from.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    bce_loss: torch.FloatTensor | None = None
    tla_loss: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    label_embeds: torch.FloatTensor | None = None


class HTLAPreTrainedModel(PreTrainedModel):
    config_class = HTLAConfig
    # The pretrained text encoder is HTLA's base model, as `bert` is BertForSequenceClassification's: `base_model`
    # and `get_input_embeddings` reach it through this name.
    base_model_prefix = "text_encoder"
    main_input_name = "input_ids"

    def post_init(self):
        # Activation checkpointing runs in the text encoder's layers, so it is supported when the encoder supports it
        # (set per model, as TimmWrapperPreTrainedModel does for the timm model it wraps).
        self.supports_gradient_checkpointing = self.text_encoder.supports_gradient_checkpointing
        super().post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        """Initialize the layers HTLA adds. The `PreTrainedModel` default draws the linear layers and the edge and
        label embeddings of the graph encoder, the classifier and the TLA projection from N(0, `initializer_range`)
        with zero biases, and sets LayerNorms to identity; the cosine head starts at scale `initial_cosine_scale()` (1/τ unless `cosine_scale_init` is set) with zero biases. The
        text encoder is initialized by its own `_init_weights` (transformers hands each sub-model to its own), and
        `from_encoder` then loads its pretrained weights."""
        super()._init_weights(module)
        if isinstance(module, CosineLabelHead):
            init.constant_(module.logit_scale, math.log(self.config.initial_cosine_scale()))
            init.zeros_(module.bias)
            if hasattr(module, "weight"):
                init.normal_(module.weight, std=self.config.initializer_range)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load as usual; a local folder is checked first so a missing or damaged file is named in the error."""
        if os.path.isdir(str(pretrained_model_name_or_path)):
            check_checkpoint_folder(str(pretrained_model_name_or_path))
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as usual, plus the flat source files (model, pipelines, `handler.py`), `auto_map` and
        `custom_pipelines` that make the folder loadable anywhere with `trust_remote_code=True`, also when the model
        was itself loaded through remote code (transformers alone would copy only the modeling file's imports).

        Files are written to a temporary folder beside the target and then renamed into it one by one, so a crash
        while saving never leaves a half-written weight or config file in place of a good one.
        """
        if not kwargs.get("is_main_process", True):
            return super().save_pretrained(save_directory, *args, **kwargs)
        os.makedirs(save_directory, exist_ok=True)
        staging = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(save_directory)), prefix=".htla-save-")
        try:
            super().save_pretrained(staging, *args, **kwargs)
            write_remote_code(staging)
            for name in sorted(os.listdir(staging), key=lambda n: n == "config.json"):  # config last
                os.replace(os.path.join(staging, name), os.path.join(save_directory, name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)


COSINE_FUSIONS = ("dot", "hybrid")  # the fusions scored by `CosineLabelHead`
# The project's default model (docs/results.md), what `from_encoder` builds with no options and `run_htc.py` trains:
# the hybrid head on mean-pooled text features, BCE only. `HTLAConfig`'s own defaults stay the paper's HTLA.
DEFAULT_MODEL = {"fusion": "hybrid", "pooling": "mean", "use_tla": False}
ROW_CHUNK = 8192  # label rows per chunk of `AddFusionLogits`' per-label dot products
# `extend_taxonomy` sets a new label's bias over the names of the new labels and of about this many old labels
# (every k-th): the texts at hand to put its scores on its family's scale.
NAME_POPULATION = 4096
# `calibrate_new_labels` places a quantile of each label's logits over the texts: fewer texts place none.
MIN_CALIBRATION_TEXTS = 20


class AddFusionLogits(torch.autograd.Function):
    """The paper's fusion, `logit_ij = w_j·(h_i + f_j) + b_j = (h W^T)_ij + w_j·f_j + b_j`, as one function.

    Its backward forms `∂W = gᵀh + colsum(g) ⊙ F` in place and never builds an `[L, H]` temporary that autograd
    over `(W * F).sum(-1)` would (two of them, and an accumulation, per step: ~0.1 s each at 98,000 labels).
    Runs in the wider dtype of its inputs.
    """

    @staticmethod
    def forward(ctx, text, weight, bias, features):  # [B, H], [L, H], [L], [L, H]
        dtype = torch.promote_types(text.dtype, weight.dtype)
        ctx.dtypes = (text.dtype, weight.dtype, bias.dtype, features.dtype)
        text, weight, bias, features = (x.to(dtype) for x in (text, weight, bias, features))
        shift = torch.cat([torch.linalg.vecdot(w, f) for w, f in zip(weight.split(ROW_CHUNK), features.split(ROW_CHUNK))])
        ctx.save_for_backward(text, weight, features)
        return torch.addmm(bias + shift, text, weight.T)  # [B, L]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # [B, L]
        text, weight, features = ctx.saved_tensors
        grad = grad.to(text.dtype)
        totals = grad.sum(0)  # [L]
        needs = ctx.needs_input_grad
        grad_text = grad @ weight if needs[0] else None
        grad_weight = (grad.T @ text).addcmul_(totals[:, None], features) if needs[1] else None
        grad_features = totals[:, None] * weight if needs[3] else None
        grads = (grad_text, grad_weight, totals if needs[2] else None, grad_features)
        return tuple(None if g is None else g.to(dtype) for g, dtype in zip(grads, ctx.dtypes))


class CosineLabelHead(nn.Module):
    """`fusion="dot"`: `logit_ij = s·cos(h_i, f_j) + b_j`, the label features acting as the classifier weights.
    `fusion="hybrid"` adds a free per-label weight `w_j` (`[L, H]`, as the flat classifier's):
    `logit_ij = w_j·h_i + s·cos(h_i, f_j) + b_j`, so the flat classifier is the special case `s = 0`.

    The scale `s = exp(logit_scale)` is learned, started at `config.initial_cosine_scale()`; `bias` is `b` (`[L]`).
    """

    def __init__(self, config: HTLAConfig):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.initial_cosine_scale())))
        self.bias = nn.Parameter(torch.zeros(config.num_labels))
        if config.fusion == "hybrid":
            self.weight = nn.Parameter(torch.empty(config.num_labels, config.hidden_size))

    def forward(self, text: torch.Tensor, label_features: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """`[B, L]` logits, or `[B, K]` those of the labels `rows` when `label_features` are theirs (`[K, H]`)."""
        bias = self.bias if rows is None else self.bias[rows]
        logits = self.logit_scale.exp() * cosine_similarity(text, label_features) + bias  # [B, L]
        if not hasattr(self, "weight"):
            return logits
        return logits + text @ (self.weight if rows is None else self.weight[rows]).T


class HTLAModel(HTLAPreTrainedModel):
    """Hierarchical text classifier with Text-Label Alignment (Kumar & Toshniwal, ECML-PKDD 2024)."""

    def __init__(self, config: HTLAConfig):
        super().__init__(config)
        self.text_encoder = _encoder_from_config(config.text_config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.graph_encoder = LabelGraphEncoder(config) if config.use_graph_encoder else None
        if config.use_graph_encoder and config.fusion in COSINE_FUSIONS:
            self.classifier = CosineLabelHead(config)
        else:
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)  # shared over labels: w_j, b_j
        self.tla_projection = None
        if config.use_tla and config.tla_projection_dim:
            hidden = config.hidden_size
            self.tla_projection = nn.Sequential(
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, config.tla_projection_dim)
            )
        self._label_cache: tuple[tuple, torch.Tensor] | None = None
        # Training with `graph_labels_per_step`: every label's last features [L, H] and forward passes since refresh.
        self._step_features: torch.Tensor | None = None
        self._fresh_features: tuple[torch.Tensor, torch.Tensor] | None = None  # (rows, features) to write into it
        self._steps_since_refresh = 0
        self.post_init()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str | None, taxonomy: Taxonomy, **config_kwargs) -> HTLAModel:
        """A fresh HTLA on a pretrained text encoder (Hub id or folder; `None` = packaged all-MiniLM-L6-v2).

        With no options this is the project's default model, the one `run_htc.py` trains (`DEFAULT_MODEL`: GPTrans,
        the hybrid head, mean pooling, BCE only); `fusion="add", pooling="cls", use_tla=True` is the paper's HTLA.
        Label names are tokenized with the encoder's tokenizer to initialize the label nodes; the graph encoder and
        classifier start from random weights. `config_kwargs` are `HTLAConfig` arguments (`tla_temperature=...`).
        """
        config_kwargs = {**DEFAULT_MODEL, **config_kwargs}
        path = resolve_encoder(encoder_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        name_ids = tokenizer(taxonomy.names, add_special_tokens=False)["input_ids"]
        config = HTLAConfig(
            text_config=AutoConfig.from_pretrained(path).to_dict(),
            taxonomy=taxonomy.to_dict(),
            label_name_ids=[list(ids) for ids in name_ids],
            **config_kwargs,
        )
        model = cls(config)
        encoder = AutoModel.from_pretrained(path)
        missing, _ = model.text_encoder.load_state_dict(encoder.state_dict(), strict=False)
        if missing:
            raise ValueError(f"{path}: encoder weights lack {missing[:3]}")
        return model

    @torch.no_grad()
    def init_bias_from_priors(self, label_frequencies) -> None:
        """Set each label's classifier bias to the log-odds of its frequency (clipped to [1e-4, 1 - 1e-4])."""
        p = torch.as_tensor(label_frequencies, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
        self.classifier.bias.copy_(torch.log(p) - torch.log1p(-p))

    @torch.no_grad()
    def init_weights_from_names(self, tokenizer, scale: float) -> None:
        """Start each label's free classifier weight at its name read as a document ("weight imprinting", as
        `extend_taxonomy` starts a new label), so a fresh model already ranks texts near a label's name higher:
        `w_j = scale · (n_j - n̄) / (|n_j - n̄| · mean_i |n_i|)`, `n_j` the text feature of label j's name and `n̄`
        their mean (the direction every name shares tells no label apart), so that `w_j·h ≈ scale · cos(h, n_j - n̄)`
        for a text feature `h` of typical length. `run_htc.py` does so at scale 10 on small training sets (its
        small-data rule). Models without a free weight (`fusion="dot"`) raise `ValueError`."""
        if not hasattr(self.classifier, "weight"):
            raise ValueError("init_weights_from_names: fusion='dot' has no free classifier weight to start from names")
        if scale <= 0:
            raise ValueError(f"init_weights_from_names: scale must be > 0, got {scale}")
        names = self._read_texts(self.taxonomy.names, tokenizer)  # [L, H]
        centred = F.normalize(names - names.mean(0), dim=1)
        self.classifier.weight.copy_(centred * (scale / names.norm(dim=1).mean()))

    @torch.no_grad()
    def extend_taxonomy(self, taxonomy: Taxonomy, tokenizer) -> list[int]:
        """Add labels to a trained model, as `resize_token_embeddings` adds tokens: the new labels are scored from
        their names and their places in the tree, without retraining (fine-tune afterwards if examples come).

        Every label of the model keeps its id, identifier, name, parent and parameters; the labels of `taxonomy` it
        lacks are appended (`Taxonomy.extended_by`: new leaves, new inner nodes with children). Each per-label
        parameter grows. A new label's name, read by the trained text encoder as if it were a document, gives its
        text feature `n_j`; its nearest known labels (`Taxonomy.nearest_known`: its siblings, else its level) give
        the scale. The new rows start at (measured in `benchmarks/run_new_labels.py`, README "New labels after
        training"):

        - free weight `w_j` of the hybrid head: `n_j / |n_j|` times the family's mean weight norm ("weight
          imprinting" from the name): the trained encoder puts texts of a label near its name, where GPTrans'
          feature of a label it never trained on ranks them poorly (held-out ICD-10-CM blocks: mAP 0.51 against
          0.09 with a zero weight, which leaves the graph's cosine alone);
        - bias `b_j`: so that, over the names of the labels (the one population of texts at hand, mostly
          negatives), the label's mean logit equals its family's: its scores sit on their scale and one decision
          threshold serves both (held-out Macro-F1 0.36 against 0.18 with the family's mean bias). With unlabelled
          texts at hand, the texts to predict, `calibrate_new_labels` places it better (`run_htc.py` does so);
        - label-id embedding (GPTrans node input): zero, so the node starts from the name's mean word embedding;
        - path embedding (edge features): the family's mean, so paths through the label look like paths through
          its family;
        - tree-distance embeddings, when the tree gets deeper: the farthest known distance's.

        `config` follows (`taxonomy`, `id2label`, `label2id`, `num_labels`, `label_name_ids`, and the new labels in
        `labels_without_examples`); the cached label features are dropped. `config.decision_thresholds`, when set,
        needs no change: a label deeper than its list takes the deepest level's threshold. The old labels' scores
        move only as far as GPTrans' attention now also sees the new labels (ICD-10-CM: -0.03 Macro-F1 points).

        Args:
            taxonomy (`Taxonomy`):
                The bigger taxonomy: every label of `config.taxonomy`, with the same parents, plus the new ones.
            tokenizer (`PreTrainedTokenizerBase`):
                The text encoder's tokenizer, to read the new labels' names.

        Returns:
            `list[int]`: the ids of the added labels (from the old number of labels on); empty, and the model
            untouched, when `taxonomy` adds none.
        """
        config, old = self.config, self.taxonomy
        taxonomy = old.extended_by(taxonomy)
        count, added = len(old), list(range(len(old), len(taxonomy)))
        if not added:
            return []
        if not config.use_graph_encoder or config.fusion not in COSINE_FUSIONS:
            setting = "use_graph_encoder=False" if not config.use_graph_encoder else f"fusion={config.fusion!r}"
            raise ValueError(f"extend_taxonomy: a model with {setting} has no way to score a label it was not trained "
                             f"on; only models with the graph encoder and fusion 'dot' or 'hybrid' can be extended")
        graph, head = self.graph_encoder, self.classifier
        nearest = [taxonomy.nearest_known(j, range(count)) for j in added]
        population = sorted(set(added) | set(range(0, count, max(1, count // NAME_POPULATION))))  # label ids
        names = self._read_texts([taxonomy.names[j] for j in population], tokenizer)  # [P, H]
        new_names = names[[population.index(j) for j in added]]  # [K, H]

        def grown(table: torch.Tensor, new_rows: torch.Tensor, at: int) -> nn.Parameter:
            """`table` with `new_rows` inserted before row `at`."""
            rows = torch.cat([table[:at], new_rows.to(table), table[at:]])
            return nn.Parameter(rows, requires_grad=table.requires_grad)

        def family_mean(table: torch.Tensor) -> torch.Tensor:  # [K, ...]
            return torch.stack([table[rows].mean(0) for rows in nearest])

        edges = graph.edge_features
        labels, paths, distances = (graph.label_embeddings.weight, edges.path_embeddings.weight,
                                    edges.distance_embeddings.weight)  # [L, G], [L+1, E], [D, E]
        graph.label_embeddings = nn.Embedding.from_pretrained(
            grown(labels, labels.new_zeros(len(added), labels.shape[1]), count), freeze=not labels.requires_grad)
        # Rows 0..L-1 of the path table are the labels, row L the virtual root: new labels go before it.
        edges.path_embeddings = nn.Embedding.from_pretrained(
            grown(paths, family_mean(paths), count), freeze=not paths.requires_grad)
        deeper = 2 * taxonomy.num_levels + 1 - len(distances)  # the longest path goes up to the root and down again
        edges.distance_embeddings = nn.Embedding.from_pretrained(
            grown(distances, distances[-1:].expand(deeper, -1), len(distances)), freeze=not distances.requires_grad)
        if hasattr(head, "weight"):
            norms = family_mean(head.weight.norm(dim=1))  # [K]
            head.weight = grown(head.weight, F.normalize(new_names, dim=1) * norms[:, None], count)
        head.bias = grown(head.bias, head.bias.new_zeros(len(added)), count)

        if config.label_name_ids is not None:
            new_ids = tokenizer([taxonomy.names[j] for j in added], add_special_tokens=False)["input_ids"]
            config.label_name_ids = config.label_name_ids + [list(ids) for ids in new_ids]
        config.taxonomy = taxonomy.to_dict()
        config.id2label = dict(enumerate(taxonomy.labels))
        config.label2id = dict(taxonomy.label2id)
        config.labels_without_examples = list(config.labels_without_examples or []) + taxonomy.labels[count:]
        graph.tree = LabelTree(config)
        self._label_cache = self._step_features = self._fresh_features = None
        self._steps_since_refresh = 0

        # Bias: the family's mean logit over the population of names, less the label's own (its bias is 0 here).
        was_training = self.training
        self.eval()
        scored = torch.tensor(sorted(set(added) | {j for rows in nearest for j in rows}), device=names.device)
        column = {j: k for k, j in enumerate(scored.tolist())}
        logits = self._logits(names, self.label_features()[scored], scored).mean(0)  # [scored]
        head.bias[added] = torch.stack([logits[[column[j] for j in rows]].mean() - logits[column[label]]
                                        for label, rows in zip(added, nearest)])
        self.train(was_training)
        return added

    @torch.no_grad()
    def calibrate_new_labels(
        self,
        texts: list[str] | None = None,
        tokenizer=None,
        *,
        text_features: torch.Tensor | None = None,
        labels: list[str] | None = None,
        quantile: float = 0.95,
        max_length: int | None = None,
        batch_size: int = 64,
    ) -> dict[str, float]:
        """Set the biases of labels the model has no training examples of from unlabelled texts: the texts a model
        extended by `extend_taxonomy` is about to predict. Their labels are never read.

        Each such label's bias moves so that its `quantile` logit over the texts equals the mean `quantile` logit
        of its nearest labels with examples (`Taxonomy.nearest_known`: its siblings, else its level): the label then
        fires on about as large a top share of the texts as its family, and the one decision threshold serves it.
        `extend_taxonomy`'s own bias rule matches the mean logit over the labels' names instead, the one population
        it has. Measured on the held-out leaves of `benchmarks/run_new_labels.py` (README "New labels after
        training"), the 95th percentile over the texts beat that rule on validation in all 6 runs (ICD-10-CM and 20
        Newsgroups, 3 seeds each); the mean logit over the texts lost to it in one. Only the biases of `labels`
        change, so their ranking of the texts (mean average precision) does not.

        Args:
            texts (`list[str]`, *optional*):
                The unlabelled texts, read with `tokenizer`; or give their `text_features`.
            tokenizer (`PreTrainedTokenizerBase`, *optional*):
                The text encoder's tokenizer, with `texts`.
            text_features (`torch.Tensor` of shape `[N, H]`, *optional*):
                The texts' features from `encode_text`, instead of `texts`.
            labels (`list[str]`, *optional*):
                The labels to calibrate; default `config.labels_without_examples`.
            quantile (`float`, *optional*, defaults to 0.95):
                The share of the texts below the matched logit.
            max_length (`int`, *optional*):
                Tokens per text after truncation (default: the tokenizer's limit); use the training run's.
            batch_size (`int`, *optional*, defaults to 64):
                Texts per forward pass.

        Returns:
            `dict[str, float]`: the shift added to each calibrated label's bias.
        """
        labels = list(self.config.labels_without_examples or []) if labels is None else list(labels)
        taxonomy = self.taxonomy
        unknown = [label for label in labels if label not in taxonomy.label2id]
        if unknown:
            raise ValueError(f"calibrate_new_labels: labels {unknown[:3]} are not in the model's taxonomy")
        if not labels:
            return {}
        if not 0 < quantile < 1:
            raise ValueError(f"calibrate_new_labels: quantile must lie in (0, 1), got {quantile}")
        if text_features is None:
            if texts is None or tokenizer is None:
                raise ValueError("calibrate_new_labels: give `texts` and `tokenizer`, or `text_features`")
            text_features = self._read_texts(texts, tokenizer, max_length, batch_size)
        if len(text_features) < MIN_CALIBRATION_TEXTS:
            raise ValueError(f"calibrate_new_labels: needs at least {MIN_CALIBRATION_TEXTS} texts to place a "
                             f"{quantile:.0%} quantile, got {len(text_features)}")
        ids = [taxonomy.label2id[label] for label in labels]
        without = set(ids) | {taxonomy.label2id[label] for label in self.config.labels_without_examples or []}
        known = set(range(len(taxonomy))) - without
        if not known:
            raise ValueError("calibrate_new_labels: no label with training examples to calibrate against")
        was_training = self.training
        self.eval()
        family = [taxonomy.nearest_known(j, known) for j in ids]
        scored = sorted(set(ids) | {j for rows in family for j in rows})
        column = {j: k for k, j in enumerate(scored)}
        rows = torch.tensor(scored, device=text_features.device)
        logits = self._logits(text_features, self.label_features()[rows], rows)  # [N, scored]
        top = torch.quantile(logits.float(), quantile, dim=0)  # [scored]
        shifts = {}
        for label, j, near in zip(labels, ids, family):
            shift = top[[column[k] for k in near]].mean() - top[column[j]]
            self.classifier.bias[j] += shift.to(self.classifier.bias.dtype)
            shifts[label] = float(shift)
        self.train(was_training)
        return shifts

    def _read_texts(self, texts: list[str], tokenizer, max_length: int | None = None,
                    batch_size: int = 256) -> torch.Tensor:
        """`[N, H]` text features of `texts` (eval mode: no dropout), with a progress bar on long lists."""
        was_training = self.training
        self.eval()
        device = self.text_encoder.get_input_embeddings().weight.device
        features = []
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="Reading texts", disable=len(starts) < 8, leave=False):
            inputs = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                               return_tensors="pt")
            features.append(self.encode_text(**inputs.to(device)))
        self.train(was_training)
        return torch.cat(features)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.config.get_taxonomy()

    # ------------------------------------------------------------------ label features and their cache

    def train(self, mode: bool = True):
        self._label_cache = None
        return super().train(mode)

    def _cache_key(self) -> tuple:
        """Identity and in-place version of every weight the label features depend on.

        Optimizer steps and weight loads bump a tensor's version or replace it, which invalidates the cache.
        """
        weights = [self.text_encoder.get_input_embeddings().weight, *self.graph_encoder.parameters()]
        return tuple((id(w), w._version, w.device, w.dtype) for w in weights)

    def label_features(self) -> torch.Tensor:
        """`[L, H]` label features `F`; cached in eval mode without autograd, since they do not depend on the text."""
        if self.training or torch.is_grad_enabled():
            return self.graph_encoder(self.text_encoder.get_input_embeddings())
        key = self._cache_key()
        if self._label_cache is None or self._label_cache[0] != key:
            self._label_cache = (key, self.graph_encoder(self.text_encoder.get_input_embeddings()))
        return self._label_cache[1]

    def _samples_labels(self, labels: torch.Tensor | None) -> bool:
        """Whether this forward pass recomputes only some labels' features (`graph_labels_per_step`)."""
        return (self.graph_encoder is not None and self.training and labels is not None and torch.is_grad_enabled()
                and self.config.labels_per_step is not None)

    def step_scores(self, text: torch.Tensor, labels: torch.Tensor):
        """Logits, TLA cosines (`[B, L]` each, `None` without TLA) and label features `[L, H]` of a training step with
        `graph_labels_per_step = K`: K labels' features are fresh, with gradients; every other label scores with the
        features it last had, as constants, so no `[L, H]` gradient is ever formed.

        The K labels are the batch's gold labels, then its TLA negatives when TLA is on, then the labels with the
        highest logit for any text of the batch: those the losses push hardest.
        """
        word_embeddings = self.text_encoder.get_input_embeddings()
        kept = self._step_features
        if self._fresh_features is not None:  # last step's features, written now that its backward pass is done
            kept.index_copy_(0, *self._fresh_features)
            self._fresh_features = None
        if kept is None or kept.device != text.device or self._steps_since_refresh >= self.config.graph_refresh_steps:
            with torch.no_grad():
                self.graph_encoder.eval()  # features as evaluation sees them, without dropout
                kept = self.graph_encoder(word_embeddings)
                self.graph_encoder.train()
            self._steps_since_refresh = 0
        self._steps_since_refresh += 1
        logits = self._logits(text, kept)  # [B, L], gradients to the text and the head only
        similarity = None
        if self.config.use_tla:
            with torch.no_grad():
                projected = kept if self.tla_projection is None else self.tla_projection(kept)
            similarity = self._similarity(text, projected, project_labels=False)  # [B, L]
        with torch.no_grad():
            gold = labels > 0.5  # [B, L]
            priority = logits.float().amax(0)  # [L]
            if similarity is not None:
                mined = select_negatives(similarity, gold, self.config.negative_mining, self.config.num_negatives)
                priority = priority.masked_fill(mined.any(0), torch.finfo(priority.dtype).max)
            priority = priority.masked_fill(gold.any(0), float("inf"))
            count = max(self.config.labels_per_step, int(gold.any(0).sum()))
            rows = priority.topk(count).indices.sort().values  # [K]
        fresh = self.graph_encoder(word_embeddings, rows)  # [K, H]
        logits = logits.index_copy(1, rows, self._logits(text, fresh, rows))
        if similarity is not None:
            similarity = similarity.index_copy(1, rows, self._similarity(text, fresh))
        self._step_features, self._fresh_features = kept, (rows, fresh.detach().to(kept.dtype))
        return logits, similarity, kept

    # ------------------------------------------------------------------ forward

    def encode_text(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """`[B, H]` text feature: first token ([CLS]) or masked mean of the last hidden state.

        Inputs longer than the encoder's positions are cut to fit, keeping each text's closing token ([SEP], </s>)
        last, so callers that did not truncate (a plain `pipeline` call on a very long text) get the prediction of
        the properly truncated text instead of an index error.
        """
        input_ids, attention_mask, token_type_ids = cut_to_positions(
            input_ids, attention_mask, token_type_ids, position_limit(self.text_encoder))
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        if self.config.pooling == "cls":
            return hidden[:, 0]
        if attention_mask is None:
            return hidden.mean(1)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        labels: torch.FloatTensor | None = None,
        return_dict: bool | None = None,
    ) -> HTLAOutput | tuple:
        r"""
        labels (`torch.FloatTensor` of shape `[B, L]`, *optional*):
            Multi-hot gold labels, ancestors included. When given, the output carries `loss = BCE + λ·TLA`.
        """
        text = self.dropout(self.encode_text(input_ids, attention_mask, token_type_ids))  # [B, H]
        label_features = similarity = None
        if self._samples_labels(labels):
            logits, similarity, label_features = self.step_scores(text, labels)
        else:
            if self.graph_encoder is not None:
                label_features = self.label_features()  # [L, H]
            logits = self._logits(text, label_features)
            if labels is not None and self.config.use_tla and label_features is not None:
                similarity = self._similarity(text, label_features)
        loss = bce = tla = None
        if labels is not None:
            loss, bce, tla = htla_loss(logits, labels, similarity, self.config)
        output = HTLAOutput(
            loss=loss, logits=logits, bce_loss=bce, tla_loss=tla, text_embeds=text, label_embeds=label_features
        )
        use_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if use_dict else output.to_tuple()

    def _logits(self, text: torch.Tensor, label_features: torch.Tensor | None, rows=None) -> torch.Tensor:
        """`[B, L]` logits of the text features `[B, H]` with the label features `[L, H]` (`None`: flat), or `[B, K]`
        those of the labels `rows` from their features `[K, H]`."""
        if label_features is None:
            return self.classifier(text)
        if self.config.fusion in COSINE_FUSIONS:
            return self.classifier(text, label_features, rows)
        weight, bias = self.classifier.weight, self.classifier.bias  # [L, H], [L]
        if rows is not None:
            weight, bias = weight[rows], bias[rows]
        # logit_ij = w_j · (h_i + f_j) + b_j = (h W^T)_ij + <w_j, f_j> + b_j: a flat classifier with a shifted bias
        return AddFusionLogits.apply(text, weight, bias, label_features)

    def _similarity(self, text: torch.Tensor, label_features: torch.Tensor, project_labels: bool = True):
        """`[B, L]` TLA's cosines of texts and labels, through the projection head when there is one (with
        `project_labels=False`, `label_features` are already projected)."""
        if self.tla_projection is not None:
            text = self.tla_projection(text)
            label_features = self.tla_projection(label_features) if project_labels else label_features
        return cosine_similarity(text, label_features)


def check_checkpoint_folder(folder: str) -> None:
    """Raise a one-line error naming the file when a checkpoint folder lacks or holds a damaged config or weights."""
    config_file = os.path.join(folder, "config.json")
    if not os.path.isfile(config_file):
        raise OSError(f"{config_file}: missing (not an HTLA checkpoint folder)")
    try:
        with open(config_file, encoding="utf-8") as handle:
            config = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_file}: not valid JSON ({err})") from None
    weights = os.path.join(folder, "model.safetensors")
    if os.path.isfile(os.path.join(folder, "model.safetensors.index.json")):
        return  # sharded weights: transformers checks each shard against the index
    if not os.path.isfile(weights):
        raise OSError(f"{weights}: missing (HTLA checkpoints hold their weights as safetensors)")
    try:
        with safe_open(weights, framework="pt") as handle:
            shapes = {name: handle.get_slice(name).get_shape() for name in handle.keys()}
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{weights}: damaged or truncated safetensors file ({err})") from None
    num_labels = len((config.get("taxonomy") or {}).get("labels", []))
    classifier = shapes.get("classifier.bias")  # [L] for both heads
    if classifier is not None and classifier[0] != num_labels:
        raise ValueError(
            f"{config_file}: taxonomy has {num_labels} labels but {weights} holds a classifier for {classifier[0]}"
        )


def _encoder_from_config(text_config) -> PreTrainedModel:
    """The bare text encoder, without a pooler where the architecture has one (HTLA never uses it)."""
    try:
        return AutoModel.from_config(text_config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(text_config)
