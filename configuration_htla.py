"""HTLA model configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from transformers import CONFIG_MAPPING, AutoConfig, PretrainedConfig

if TYPE_CHECKING:
    from modeling_htla.taxonomy import Taxonomy

NEGATIVE_MINING = ("hard", "random", "all")
GRAPH_ATTENTION = ("auto", "dense", "sparse")
# "auto" keeps the exact dense GPTrans form while the activations it keeps for its L² label pairs stay under
# DENSE_MEMORY_BUDGET (about 490 labels at edge_dim 30 and 12 heads), and above that picks the form that does less
# work. Measured by benchmarks/bench_graph_forms.py (docs/performance.md, "Choosing the graph form"): a dense layer keeps about
# 4·(3·edge_dim + 4·heads) bytes per pair for its backward pass (590 B measured at 30 and 12); a pair of the sparse
# form costs SPARSE_PAIR_COST pairs of the dense form, plus a fixed SPARSE_FIXED_COST dense pairs.
DENSE_MEMORY_BUDGET = 128 * 2**20
SPARSE_PAIR_COST = 1.2
SPARSE_FIXED_COST = 7400
# Above this many labels the dense form's [L, L, edge_dim] tensors take gigabytes: "dense" refuses, "auto" is sparse.
DENSE_GRAPH_LIMIT = 4096
# graph_labels_per_step="auto": training steps recompute SAMPLED_GRAPH_LABELS labels' features on taxonomies of more
# than SAMPLED_GRAPH_MIN_LABELS labels, where a step that computes every label costs more than 1.5x the plain
# classifier's (1.53x at 4 x 1,000 labels, 1.34x sampling 512: docs/performance.md, "Taxonomies of any shape"); smaller taxonomies
# compute every label.
SAMPLED_GRAPH_LABELS = 512
SAMPLED_GRAPH_MIN_LABELS = 4096
POOLING = ("cls", "mean")
FUSION = ("add", "dot", "hybrid")


# Written to every config.json whatever their value: a reader (or an older loader) never has to know the class
# defaults to tell which model a checkpoint is.
MODEL_DEFINING = ("pooling", "fusion", "use_graph_encoder", "use_tla")


class HTLAConfig(PretrainedConfig):
    r"""Configuration of an [`HTLAModel`]: the text encoder's config, the label taxonomy and the HTLA hyper-parameters.

    Everything needed to build the model lives here, so `HTLAModel(config)` works without network or files.

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the text encoder (any `AutoModel` encoder, BERT family first). Defaults to `BertConfig()`.
        taxonomy (`dict`, *optional*):
            The label tree as `Taxonomy.to_dict()`: `labels` (identifiers), `parents` (identifier or `None` per label)
            and `names` (readable names). `id2label`/`label2id` follow `labels`.
        label_name_ids (`list[list[int]]`, *optional*):
            Token ids of every label's readable name in the text encoder's vocabulary (no special tokens). A label's
            initial node feature is the mean of the encoder's input embeddings over these tokens. Filled in by
            `HTLAModel.from_encoder`; labels without ids start from their label-id embedding alone.
        labels_without_examples (`list[str]`, *optional*):
            Identifiers of the labels added after training by `HTLAModel.extend_taxonomy` that no training example
            has had since: the model scores them from their names and places in the tree alone (the model card
            lists them). `run_htc.py` drops a label from it once it trains on examples of that label.
        pooling (`str`, *optional*, defaults to `"cls"`):
            Text feature: `"cls"` (first token, as in the paper) or `"mean"` (masked mean of the last hidden state,
            better for encoders trained for sentence embeddings such as all-MiniLM-L6-v2).
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the text feature.
        fusion (`str`, *optional*, defaults to `"add"`):
            How text and label features meet in the head. `"add"` is the paper's: `logit_ij = w_j·(h_i + f_j) + b_j`
            with one shared linear classifier. Algebraically this is `w_j·h_i + (w_j·f_j + b_j)`: at inference the
            label feature only shifts each label's bias, so the model is a flat linear classifier and the label
            graph shapes predictions only through what TLA does to the text encoder in training. `"dot"` makes the
            label features the classifier: `logit_ij = s·cos(h_i, f_j) + b_j` with a learned scale `s` (started at
            `cosine_scale_init`), so the graph acts at inference too.
            `"hybrid"` adds a free per-label weight to `"dot"`: `logit_ij = w_j·h_i + s·cos(h_i, f_j) + b_j`, the flat
            classifier plus the graph's cosine, so labels whose graph features are alike can still be told apart.
        use_graph_encoder (`bool`, *optional*, defaults to `True`):
            `False` gives the flat baseline (the paper's "BERT"): a linear classifier on the text feature.
        graph_num_layers (`int`, *optional*, defaults to 1):
            Number of GPTrans layers.
        graph_hidden_size (`int`, *optional*):
            Width of the label nodes inside GPTrans; defaults to the text encoder's `hidden_size` (the paper). A
            narrower graph projects the label-name embeddings in and the label features back out (two linear maps),
            so GPTrans' per-label matrix products shrink with the square of the width: for taxonomies of tens of
            thousands of labels, where a full-width GPTrans layer over every label costs several times the encoder's
            own step (docs/performance.md, "Taxonomies of any shape").
        graph_num_heads (`int`, *optional*):
            Attention heads of GPTrans; defaults to the text encoder's `num_attention_heads`. Must divide
            `graph_hidden_size`.
        edge_dim (`int`, *optional*, defaults to 30):
            Size of the edge features (distance embedding + mean of path-label embeddings).
        graph_attention (`str`, *optional*, defaults to `"auto"`):
            `"dense"` attends over every label pair (edge tensors of `L² × edge_dim`); `"sparse"` only over pairs at
            most `graph_max_hops` tree edges apart (with the sibling bound below), so large taxonomies fit in
            memory; `"auto"` is dense while its pair activations take at most 128 MiB (about 490 labels at the
            default sizes) and otherwise whichever form does less measured work (`use_sparse_graph`). Sparse equals
            dense when `graph_max_hops` covers the whole tree and no family exceeds the sibling bound.
        graph_max_hops (`int`, *optional*, defaults to 2):
            Neighbourhood radius of the sparse form (2 = parent, children, siblings, grandparents, grandchildren).
        graph_max_siblings (`int`, *optional*, defaults to 32):
            Sibling bound of the sparse form: in a family of more than this + 1 children, a label pairs sideways with
            the `graph_max_siblings` siblings next to it in the taxonomy's order (half before, half after,
            cyclically) instead of all of them, and reaches the others through their parent. Keeps the pair count
            linear in the fan-out; narrower families are untouched. `None` pairs every sibling.
        graph_dropout (`float`, *optional*, defaults to 0.1):
            Dropout inside GPTrans.
        graph_labels_per_step (`int` or `str`, *optional*, defaults to `"auto"`):
            K: on a taxonomy of more than K labels, a training step recomputes the label features, with gradients,
            of K labels only: the batch's gold labels (all of them, even beyond K), its TLA negatives, then the
            labels the batch scores highest. GPTrans runs on their neighbourhoods alone (the same values as over the
            whole tree); every other label scores with the features it last had, and all are recomputed without
            gradients every `graph_refresh_steps` steps. Evaluation and prediction always compute every label.
            `None` (or `"all"`) recomputes every label at every step (the paper); `"auto"` is 512 on taxonomies of
            more than 4,096 labels and `None` below. An extension of ours for very large trees, where GPTrans over
            every label costs several times the encoder's own step; on a small tree it costs accuracy
            (docs/performance.md, "Taxonomies of any shape").
        graph_refresh_steps (`int`, *optional*, defaults to 100):
            With `graph_labels_per_step`, how many training forward passes (micro-batches, with gradient
            accumulation) pass between two recomputations of every label's features.
        use_tla (`bool`, *optional*, defaults to `use_graph_encoder`):
            Add the Text-Label Alignment loss; `False` gives the paper's "BERT-GPTrans" (BCE only). It needs the graph
            encoder, so by default it is on with the graph encoder and off for the flat classifier.
        tla_weight (`float`, *optional*, defaults to 1.0):
            λ, the weight of TLA in `BCE + λ·TLA`.
        tla_temperature (`float`, *optional*, defaults to 0.07):
            τ, the temperature of the contrastive TLA loss; must be > 0.
        cosine_scale_init (`float`, *optional*):
            The start of the learned cosine scale `s` of the `"dot"` and `"hybrid"` heads; `None` starts it at
            `1 / tla_temperature`, the scale at which TLA compares the same cosines. `run_htc.py` starts it at 1 on
            small training sets (`SMALL_DATA_EXAMPLES_PER_LEAF` examples per leaf or fewer): the hybrid head then
            starts near the flat classifier and its cosine term grows only as the data asks (docs/training.md). A trained
            checkpoint keeps its learned scale; this only sets where training starts.
        tla_projection_dim (`int`, *optional*):
            When set, TLA compares texts and labels through a shared two-layer projection head (Linear-ReLU-Linear,
            `hidden → hidden → tla_projection_dim`, as in SimCLR and behind a flag in the HTLA authors' code) instead
            of the features themselves (the paper), so that the contrastive geometry does not constrain the features
            the classifier reads. The head is used in training only.
        negative_mining (`str`, *optional*, defaults to `"hard"`):
            Negatives of TLA: `"hard"` (most similar non-gold labels), `"random"` or `"all"` (every non-gold label).
        num_negatives (`int`, *optional*):
            Negatives per text for `"hard"`/`"random"`; default `None` takes as many as the text has gold labels.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the initialization of the new (graph and head) weights.
        decision_thresholds (`list[float]`, *optional*):
            One probability threshold per taxonomy level (depth 1 first) above which a label is predicted, learned on
            the validation split after training (`modeling_htla.thresholds`: one global threshold or one per level,
            whichever keeps more Macro-F1 on held-out halves of that split). Every prediction path reads them
            (`label_thresholds`): `run_htc.py --do_predict`, both pipelines, `handler.py`, the demo. `None` (a model
            trained without a validation split, or saved before thresholds were learned) predicts at 0.5.

    The defaults are the paper's HTLA (additive fusion, [CLS] pooling, TLA on with the graph), not the setting
    `run_htc.py` trains by default (the hybrid head with BCE only, which wins in this project's measurements,
    docs/results.md; `HTLAModel.from_encoder` builds that one). They stay the paper's because this class describes
    the published model, and because checkpoints saved before `config.json` recorded every model-defining choice
    (`MODEL_DEFINING`, now always written) have no `fusion` key: they load with the fusion they were trained with.
    """

    model_type = "htla"
    sub_configs = {"text_config": AutoConfig}
    keys_to_ignore_at_inference = ["bce_loss", "tla_loss", "text_embeds", "label_embeds"]

    def __init__(
        self,
        text_config: dict | PretrainedConfig | None = None,
        taxonomy: dict | None = None,
        label_name_ids: list[list[int]] | None = None,
        labels_without_examples: list[str] | None = None,
        pooling: str = "cls",
        fusion: str = "add",
        classifier_dropout: float = 0.1,
        use_graph_encoder: bool = True,
        graph_num_layers: int = 1,
        graph_hidden_size: int | None = None,
        graph_num_heads: int | None = None,
        edge_dim: int = 30,
        graph_attention: str = "auto",
        graph_max_hops: int = 2,
        graph_max_siblings: int | None = 32,
        graph_dropout: float = 0.1,
        graph_labels_per_step: int | str | None = "auto",
        graph_refresh_steps: int = 100,
        use_tla: bool | None = None,
        tla_weight: float = 1.0,
        tla_temperature: float = 0.07,
        cosine_scale_init: float | None = None,
        tla_projection_dim: int | None = None,
        negative_mining: str = "hard",
        num_negatives: int | None = None,
        initializer_range: float = 0.02,
        decision_thresholds: list[float] | None = None,
        **kwargs,
    ):
        if text_config is None:
            text_config = CONFIG_MAPPING["bert"]()
        elif isinstance(text_config, dict):
            text_config = dict(text_config)
            model_type = text_config.pop("model_type", "bert")
            if model_type not in CONFIG_MAPPING:
                raise ValueError(f"text_config: unknown model_type {model_type!r}")
            text_config = CONFIG_MAPPING[model_type](**text_config)
        self.text_config = text_config

        tax = _taxonomy(taxonomy)
        self.taxonomy = tax.to_dict()
        if label_name_ids is not None and len(label_name_ids) != len(tax):
            raise ValueError(f"label_name_ids: {len(label_name_ids)} entries for {len(tax)} labels")
        self.label_name_ids = label_name_ids
        unknown = sorted(set(labels_without_examples or []) - set(tax.label2id))
        if unknown:
            raise ValueError(f"labels_without_examples: {unknown[:3]} not in the taxonomy")
        self.labels_without_examples = labels_without_examples

        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}")
        if fusion not in FUSION:
            raise ValueError(f"fusion must be one of {FUSION}, got {fusion!r}")
        if negative_mining not in NEGATIVE_MINING:
            raise ValueError(f"negative_mining must be one of {NEGATIVE_MINING}, got {negative_mining!r}")
        if tla_temperature is None or tla_temperature <= 0:
            raise ValueError(f"tla_temperature must be > 0, got {tla_temperature}")
        if cosine_scale_init is not None and cosine_scale_init <= 0:
            raise ValueError(f"cosine_scale_init must be > 0, got {cosine_scale_init}")
        if edge_dim is None or edge_dim <= 0:
            raise ValueError(f"edge_dim must be > 0, got {edge_dim}")
        if graph_attention not in GRAPH_ATTENTION:
            raise ValueError(f"graph_attention must be one of {GRAPH_ATTENTION}, got {graph_attention!r}")
        if graph_max_hops < 1:
            raise ValueError(f"graph_max_hops must be >= 1, got {graph_max_hops}")
        if graph_max_siblings is not None and graph_max_siblings < 0:
            raise ValueError(f"graph_max_siblings must be >= 0 or None, got {graph_max_siblings}")
        if graph_attention == "dense" and len(tax) > DENSE_GRAPH_LIMIT:
            gib = len(tax) ** 2 * edge_dim * 4 / 2**30
            raise ValueError(
                f"taxonomy of {len(tax)} labels is too large for graph_attention='dense' (each edge tensor would take "
                f"{gib:.1f} GiB); use graph_attention='sparse' or 'auto'"
            )
        if isinstance(graph_labels_per_step, str) and graph_labels_per_step not in ("auto", "all"):
            if not graph_labels_per_step.isdigit():
                raise ValueError(f"graph_labels_per_step must be 'auto', 'all' or a number, got {graph_labels_per_step!r}")
            graph_labels_per_step = int(graph_labels_per_step)
        if graph_labels_per_step == "all":
            graph_labels_per_step = None
        if isinstance(graph_labels_per_step, int) and graph_labels_per_step < 1:
            raise ValueError(f"graph_labels_per_step must be >= 1, 'auto' or None, got {graph_labels_per_step}")
        if graph_refresh_steps < 1:
            raise ValueError(f"graph_refresh_steps must be >= 1, got {graph_refresh_steps}")
        if graph_num_layers < 1:
            raise ValueError(f"graph_num_layers must be >= 1, got {graph_num_layers}")
        if tla_projection_dim is not None and tla_projection_dim < 1:
            raise ValueError(f"tla_projection_dim must be >= 1 or None, got {tla_projection_dim}")
        if num_negatives is not None and num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1 or None, got {num_negatives}")
        if decision_thresholds is not None and (
            not isinstance(decision_thresholds, (list, tuple)) or not decision_thresholds
            or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in decision_thresholds)
        ):
            raise ValueError(f"decision_thresholds: expected a list of numbers in [0, 1], one per level, got {decision_thresholds!r}")
        if use_tla is None:
            use_tla = use_graph_encoder
        if use_tla and not use_graph_encoder:
            raise ValueError("use_tla=True needs use_graph_encoder=True (TLA aligns texts with graph label features)")
        embedding_size = getattr(text_config, "embedding_size", None) or text_config.hidden_size
        if use_graph_encoder and embedding_size != text_config.hidden_size:
            raise ValueError(
                f"text_config: word embeddings of size {embedding_size} but hidden size {text_config.hidden_size} (as in "
                "ELECTRA-small); the graph encoder starts label nodes from the word embeddings and needs both equal, "
                "use such an encoder with use_graph_encoder=False"
            )
        if graph_hidden_size is not None and graph_hidden_size < 1:
            raise ValueError(f"graph_hidden_size must be >= 1 or None, got {graph_hidden_size}")
        graph_hidden_size = graph_hidden_size or text_config.hidden_size
        heads = graph_num_heads or text_config.num_attention_heads
        if graph_hidden_size % heads:
            raise ValueError(
                f"graph_hidden_size {graph_hidden_size} is not divisible by graph_num_heads {heads}; set "
                "graph_num_heads to a divisor of it"
            )
        self.pooling = pooling
        self.fusion = fusion
        self.classifier_dropout = classifier_dropout
        self.use_graph_encoder = use_graph_encoder
        self.graph_num_layers = graph_num_layers
        self.graph_hidden_size = graph_hidden_size
        self.graph_num_heads = heads
        self.edge_dim = edge_dim
        self.graph_attention = graph_attention
        self.graph_max_hops = graph_max_hops
        self.graph_max_siblings = graph_max_siblings
        self.graph_dropout = graph_dropout
        self.graph_labels_per_step = graph_labels_per_step
        self.graph_refresh_steps = graph_refresh_steps
        self.use_tla = use_tla
        self.tla_weight = tla_weight
        self.tla_temperature = tla_temperature
        self.cosine_scale_init = cosine_scale_init
        self.tla_projection_dim = tla_projection_dim
        self.negative_mining = negative_mining
        self.num_negatives = num_negatives
        self.initializer_range = initializer_range
        self.decision_thresholds = None if decision_thresholds is None else [float(t) for t in decision_thresholds]

        kwargs["id2label"] = dict(enumerate(tax.labels))
        kwargs["label2id"] = dict(tax.label2id)
        kwargs.setdefault("problem_type", "multi_label_classification")
        super().__init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def use_sparse_graph(self) -> bool:
        """Whether GPTrans uses the sparse (k-hop) form: as asked, or for `"auto"` when the dense form would keep
        more than `DENSE_MEMORY_BUDGET` for its pairs and the sparse form does less work (see the constants)."""
        if self.graph_attention != "auto":
            return self.graph_attention == "sparse"
        labels = len(self.taxonomy["labels"])
        if labels > DENSE_GRAPH_LIMIT:
            return True
        bytes_per_pair = 4 * (3 * self.edge_dim + 4 * self.graph_num_heads) * self.graph_num_layers
        if labels**2 * bytes_per_pair <= DENSE_MEMORY_BUDGET:
            return False
        pairs = len(self.get_taxonomy().neighbour_pairs(self.graph_max_hops, self.graph_max_siblings)[0])
        return labels**2 > SPARSE_FIXED_COST + SPARSE_PAIR_COST * pairs

    @property
    def labels_per_step(self) -> int | None:
        """How many labels' features a training step recomputes (`graph_labels_per_step` resolved), `None` for all."""
        labels, per_step = len(self.taxonomy["labels"]), self.graph_labels_per_step
        if per_step == "auto":
            per_step = SAMPLED_GRAPH_LABELS if labels > SAMPLED_GRAPH_MIN_LABELS else None
        return per_step if per_step is not None and per_step < labels else None

    def to_diff_dict(self) -> dict:
        """`PretrainedConfig.to_diff_dict` plus the model-defining choices (`MODEL_DEFINING`) even when they equal
        the class defaults, so every `config.json` says which head and loss it was trained with."""
        diff = super().to_diff_dict()
        diff.update({key: getattr(self, key) for key in MODEL_DEFINING})
        return diff

    def initial_cosine_scale(self) -> float:
        """Where the cosine head's learned scale starts: `cosine_scale_init`, else `1 / tla_temperature`."""
        return self.cosine_scale_init if self.cosine_scale_init is not None else 1 / self.tla_temperature

    def label_thresholds(self) -> list[float]:
        """The decision threshold of every label (`[L]`, in label order): its level's learned threshold (a level
        deeper than those learned takes the deepest one's), or 0.5 without learned thresholds."""
        return self.get_taxonomy().per_label(self.decision_thresholds or [0.5])

    def get_taxonomy(self) -> Taxonomy:
        """The label tree as a `Taxonomy`."""
        return _taxonomy(self.taxonomy)


def _taxonomy(data: dict | None) -> Taxonomy:
    """A `Taxonomy` from its `to_dict()` form.

    Imported on use: the `modeling_htla` package imports this module, so a top-level import would make
    `import configuration_htla` circular whenever it runs first.
    """
    from modeling_htla.taxonomy import Taxonomy

    return Taxonomy(**data) if data else Taxonomy([], [])


__all__ = ["HTLAConfig"]
