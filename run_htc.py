#!/usr/bin/env python
"""Train, evaluate and predict with HTLA for hierarchical text classification.

In the style of the transformers example scripts (`run_classification.py`):

    python run_htc.py                                   # embedded default: ICD-10-CM (chapter > block)
    python run_htc.py examples/20newsgroups.yaml        # all arguments from one YAML or JSON file
    python run_htc.py --train_file train.jsonl --validation_file dev.jsonl --taxonomy_file labels.taxonomy \
        --output_dir out --do_train --do_eval
    accelerate launch --multi_gpu --num_processes 2 run_htc.py --use_cpu ...   # several processes (here 2 CPU ones)

`--model_name_or_path` names a text encoder (a fresh HTLA is built on it), a trained HTLA checkpoint (training
continues, or `--do_predict` runs with the checkpoint's own taxonomy) or a folder exported by
`python -m modeling_htla.onnx` (`--do_predict` only, run by ONNX Runtime). With a checkpoint, a `--taxonomy_file` holding
more labels extends it (`HTLAModel.extend_taxonomy`): the new labels are scored from their names and places in the
tree, their biases calibrated on the texts to predict (`--calibrate_new_labels`), and without `--do_train` the extended
checkpoint is saved in `--output_dir`.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import transformers
import yaml
from accelerate import PartialState
from datasets import DatasetDict
from transformers import (
    AutoTokenizer,
    EvalPrediction,
    HfArgumentParser,
    IntervalStrategy,
    PretrainedConfig,
    set_seed,
)
from transformers.trainer_utils import speed_metrics

from modeling_htla import DEFAULT_ENCODER_NAME, HTLAModel, HTLATrainer, HTLATrainingArguments, Taxonomy, resolve_encoder
from modeling_htla.data import (
    build_taxonomy,
    encode_labels,
    examples_per_leaf,
    load_icd10cm,
    load_raw_datasets,
    split_validation,
)
from modeling_htla.collator import HTCDataCollator
from modeling_htla.decoding import DECODING
from modeling_htla.export import push_folder
from modeling_htla.io import write_atomic
from modeling_htla.predict import PREDICTION_FORMATS, classify_corpus
from modeling_htla.trainer import AnyMetricEarlyStopping, last_complete_checkpoint, training_outcome
from modeling_htla.metrics import htc_scores
from modeling_htla.model_card import model_card, widget_examples
from modeling_htla.modeling import MIN_CALIBRATION_TEXTS
from modeling_htla.thresholds import choose_thresholds

logger = logging.getLogger(__name__)


# The small-data rule (docs/training.md#small-training-sets): a fresh hybrid head trained on at most this many examples
# per leaf (`examples_per_leaf`) starts its cosine scale at 1 instead of 1/τ = 14.3, so it starts near the flat
# classifier and its graph term grows only as the data asks, and its free classifier weights at the label names
# (`HTLAModel.init_weights_from_names`, scale 10), so it starts from what the names say. Measured on 20 Newsgroups and
# ICD-10-CM at k = 2 to 32 examples per leaf (benchmarks/run_learning_curve.py), on validation: the scale-1 start led
# at k = 2, 8 and 16 on both and lost at k = 32 on 20 Newsgroups; the names' start on top of it led at k = 2 and 8 on
# both and was level at k = 16 (behind on 20 Newsgroups, ahead on ICD-10-CM).
SMALL_DATA_EXAMPLES_PER_LEAF = 16
SMALL_DATA_COSINE_SCALE = 1.0
SMALL_DATA_NAMES_SCALE = 10.0


@dataclass
class ModelArguments:
    """Which model to train or use, and HTLA's hyper-parameters for a fresh model."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Text encoder (Hub id or folder), a trained HTLA checkpoint or its ONNX export "
                          "(--do_predict). Default: packaged all-MiniLM-L6-v2."},
    )
    pooling: str = field(
        default="mean",
        metadata={"help": "Text feature: 'cls' (the paper's [CLS] vector) or 'mean' (suits sentence-embedding encoders such as the default)."},
    )
    fusion: str = field(
        default="hybrid",
        metadata={"help": "'hybrid' (default: a flat linear classifier plus the scaled cosine of text and label "
                  "features, so the label graph acts at inference), 'add' (the paper: w_j·(h_i + f_j) + b_j, a flat "
                  "classifier at inference) or 'dot' (the scaled cosine alone)."},
    )
    use_graph_encoder: bool = field(default=True, metadata={"help": "False: flat classifier (the paper's 'BERT')."})
    use_tla: bool = field(
        default=False,
        metadata={"help": "Add the TLA loss (the paper's HTLA: with --fusion add). Default off: BCE only, which wins in "
                  "this project's measurements (docs/results.md). Needs the graph encoder."},
    )
    tla_weight: float = field(default=1.0, metadata={"help": "λ in BCE + λ·TLA."})
    tla_temperature: float = field(default=0.07, metadata={"help": "τ of the TLA loss."})
    cosine_scale_init: float | None = field(
        default=None,
        metadata={"help": "Start of the hybrid/dot head's learned cosine scale. Default: by the small-data rule, "
                  f"{SMALL_DATA_COSINE_SCALE:g} at {SMALL_DATA_EXAMPLES_PER_LEAF} training examples per leaf or fewer, "
                  "else 1/--tla_temperature."},
    )
    tla_projection_dim: int | None = field(
        default=None, metadata={"help": "Compare texts and labels in TLA through a projection head of this size."}
    )
    negative_mining: str = field(default="hard", metadata={"help": "'hard', 'random' or 'all'."})
    num_negatives: int | None = field(default=None, metadata={"help": "Negatives per text (default: its number of gold labels)."})
    graph_num_layers: int = field(default=1, metadata={"help": "GPTrans layers."})
    graph_hidden_size: int | None = field(
        default=None,
        metadata={"help": "Width of GPTrans' label nodes (default: the encoder's hidden size). A narrower graph, e.g. "
                  "64, makes taxonomies of tens of thousands of labels cheap to train."},
    )
    graph_num_heads: int | None = field(
        default=None, metadata={"help": "GPTrans attention heads (default: the encoder's); must divide the graph width."}
    )
    edge_dim: int = field(default=30, metadata={"help": "Size of GPTrans edge features."})
    graph_attention: str = field(
        default="auto", metadata={"help": "GPTrans form: 'dense' (all label pairs), 'sparse' (k-hop pairs) or 'auto'."}
    )
    graph_max_hops: int = field(default=2, metadata={"help": "Neighbourhood radius of the sparse GPTrans form."})
    graph_max_siblings: int | None = field(
        default=32, metadata={"help": "Siblings a label attends to in wider families (sparse form; reaches the others "
                              "through their parent)."}
    )
    graph_labels_per_step: str = field(
        default="auto",
        metadata={"help": "K: on taxonomies of more labels a training step recomputes the graph features of K labels "
                  "only (gold, negatives, top-scored), the others keep their last ones; 'all': every label at every "
                  "step; 'auto': 512 above 4,096 labels, else all."},
    )
    graph_refresh_steps: int = field(
        default=100, metadata={"help": "With --graph_labels_per_step, steps between two recomputations of every label."}
    )
    classifier_dropout: float = field(default=0.1, metadata={"help": "Dropout on the text feature."})
    init_bias_from_priors: bool = field(
        default=True,
        metadata={"help": "Fresh model: start each label's classifier bias at the log-odds of its training frequency, "
                  "so training starts from the label priors instead of spending its first steps learning them."},
    )
    init_weights_from_names: float | None = field(
        default=None,
        metadata={"help": "Fresh model: start each label's free classifier weight at its name's text feature, less the "
                  "names' mean, at length this scale over the names' mean feature length, so training starts from "
                  "what the names say (HTLAModel.init_weights_from_names); 0: random weights. Default: by the "
                  f"small-data rule, {SMALL_DATA_NAMES_SCALE:g} for the hybrid head at {SMALL_DATA_EXAMPLES_PER_LEAF} "
                  "training examples per leaf or fewer, else 0."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache Hub downloads."})
    license: str = field(
        default="apache-2.0",
        metadata={"help": "License in the model card's metadata (a Hub license id). Default apache-2.0, the license of "
                  "the default encoder (all-MiniLM-L6-v2) and of this package (the embedded ICD-10-CM data is a US "
                  "government work in the public domain); set the one your encoder and training data allow (e.g. "
                  "cc-by-nc-4.0, or 'other')."},
    )
    language: list[str] | None = field(
        default=None,
        metadata={"help": "Languages of the texts for the card's metadata (ISO 639-1 codes, e.g. en). Default unset, "
                  "except 'en' for the embedded ICD-10-CM data."},
    )


@dataclass
class DataArguments:
    """Which data to train and evaluate on. With no data argument, the embedded ICD-10-CM dataset is used."""

    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id (e.g. web_of_science)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config (e.g. WOS46985)."})
    train_file: str | None = field(default=None, metadata={"help": "JSON Lines, JSON or CSV training file."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file (default: a seeded split of train)."})
    test_file: str | None = field(default=None, metadata={"help": "Test file for --do_predict."})
    taxonomy_file: str | None = field(
        default=None, metadata={"help": "HiAGM .taxonomy or JSON {child: parent}; default: derived from label paths."}
    )
    label_names_file: str | None = field(
        default=None,
        metadata={"help": "JSON {label: readable name}; label nodes start from their names (e.g. RCV1 'C152')."},
    )
    text_column: str | None = field(default=None, metadata={"help": "Text column (auto-detected by default)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column: a list or a path string (auto-detected)."})
    label_separator: str = field(default=" > ", metadata={"help": "Separator of path strings in the label column."})
    skip_empty_texts: bool = field(
        default=False, metadata={"help": "Drop rows whose text is empty (with a warning) instead of stopping with an error."}
    )
    add_ancestors: bool = field(default=True, metadata={"help": "Give every gold label all its ancestors."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per text after truncation."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set (debugging, quick runs)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation set."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate the test set."})
    validation_split_percentage: float = field(default=10.0, metadata={"help": "Validation share split from train when none is given."})
    icd10_depth: int = field(default=2, metadata={"help": "Embedded ICD-10-CM data: label depth (2 = chapter > block)."})
    threshold: float | None = field(
        default=None,
        metadata={"help": "Probability above which a label is predicted, for every label. Default: the model's "
                  "decision thresholds learned on validation (0.5 without them). Metrics are reported at this value "
                  "(0.5 by default, as in the HTC literature) and, as `*_learned_*`, at the learned thresholds."},
    )
    learn_thresholds: bool | None = field(
        default=None,
        metadata={"help": "Learn decision thresholds on the validation split (one global or one per level, chosen by "
                  "cross-validation on that split; modeling_htla/thresholds.py) and store them in the saved config. "
                  "Default: when training with --do_eval."},
    )
    calibrate_new_labels: bool = field(
        default=True,
        metadata={"help": "After extending a checkpoint by new labels (without --do_train): set their biases from the "
                  "unlabelled texts to predict (--test_file, else the validation texts; their labels are not read) "
                  "so each new label's 95th-percentile logit matches its family's (HTLAModel.calibrate_new_labels). "
                  "False keeps the biases extend_taxonomy sets from the labels' names."},
    )
    decoding: str = field(default="threshold", metadata={"help": f"Prediction decoding: one of {DECODING}."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    predict_top_k: int = field(
        default=0, metadata={"help": "--do_predict: also write each document's K best-scored labels (`top_k`)."}
    )
    predictions_format: str = field(
        default="jsonl", metadata={"help": f"--do_predict output: predictions.<format>, one of {PREDICTION_FORMATS}."}
    )
    predict_chunk_size: int = field(
        default=1024,
        metadata={"help": "--do_predict: documents per chunk, decided and written on their own (memory is that of "
                  "one chunk; a killed run keeps its finished chunks)."},
    )
    predict_sort_by_length: bool = field(
        default=True, metadata={"help": "--do_predict: batch the documents of a chunk by length (dynamic padding)."}
    )


# The recipe: what every run trains with unless a flag or an argument file sets a value (docs/training.md#the-recipe,
# chosen on the validation splits of 20 Newsgroups and ICD-10-CM). The model is the default of the arguments above
# (GPTrans, hybrid head, BCE only); the encoder, GPTrans and the other new layers each get their own learning rate;
# every epoch is evaluated, the best epoch by validation Macro-F1 is kept, training stops after
# `early_stopping_patience` epochs without a gain, and the epoch cap follows the training set's size
# (`HTLATrainingArguments.num_train_epochs`, `epoch_cap`). Decision thresholds are learned on validation after training.
RECIPE = {
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "learning_rate": 1e-4,
    "head_learning_rate": 1e-2,
    "graph_learning_rate": 1e-3,
    "warmup_steps": 50,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 1,
    "load_best_model_at_end": True,
    "metric_for_best_model": "macro_f1",
    "early_stopping_patience": 3,
    "logging_steps": 50,
}
# The embedded demo: `python run_htc.py` with no data argument, the recipe on ICD-10-CM (chapter > block) cut to a
# time a newcomer waits for: one epoch of 16,000 codes at 64 tokens, batch 32 (about 10 minutes on 2 CPU cores).
# The paper's HTLA on the same data: examples/icd10cm_paper.yaml.
DEFAULT_RUN = RECIPE | {
    "output_dir": "outputs/htla-icd10cm",
    "do_train": True,
    "do_eval": True,
    "do_predict": True,
    "max_train_samples": 16000,
    "max_eval_samples": 2000,
    "max_predict_samples": 4000,
    "max_seq_length": 64,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 128,
    "warmup_steps": 30,
    "logging_steps": 25,
}
ARGUMENT_CLASSES = (ModelArguments, DataArguments, HTLATrainingArguments)


def parse_args(argv: list[str]):
    """The three argument dataclasses from command-line flags, optionally after one JSON/YAML file of arguments.

    Every value starts from the recipe (`RECIPE`; `DEFAULT_RUN` when no data argument is given, the embedded demo);
    the file's values, then each flag, override one value each and keep the rest. A file value `null` unsets a recipe
    value (the Trainer's own default then applies). Unknown flags and runs that would do nothing stop with one line.
    """
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    settings = {}
    if argv and argv[0].endswith((".json", ".yaml", ".yml")):
        try:
            settings = read_mapping(argv[0], "arguments", "a mapping of argument names to values")
        except ValueError as err:
            raise SystemExit(f"run_htc.py: error: {err}") from None
        argv = argv[1:]
    check_flags(parser, [f"--{key}" for key in settings], source=" in the argument file")
    check_flags(parser, argv)
    data_parser = HfArgumentParser(DataArguments, allow_abbrev=False)  # which data, before the rest is checked
    data_args, _ = data_parser.parse_args_into_dataclasses(args=settings_to_argv(settings) + argv,
                                                           return_remaining_strings=True)
    embedded = uses_embedded_data(data_args)
    flags = flag_values(argv)
    merged = (DEFAULT_RUN if embedded else RECIPE) | settings
    merged |= follow_strategies(merged | flags, set(settings) | set(flags))  # the flags themselves stay in argv
    merged = {key: value for key, value in merged.items() if value is not None}
    full_argv = settings_to_argv(merged) + argv
    # Read before TrainingArguments turns --do_eval on for any evaluation strategy (the recipe evaluates every epoch).
    actions, _ = HfArgumentParser(Actions, allow_abbrev=False).parse_args_into_dataclasses(
        args=full_argv, return_remaining_strings=True)
    if not (actions.do_train or actions.do_eval or actions.do_predict):
        raise SystemExit("run_htc.py: error: nothing to do: give --do_train, --do_eval and/or --do_predict")
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=full_argv)
    training_args.do_eval = actions.do_eval or actions.do_train  # training ends by learning thresholds on validation
    if not actions.do_train:  # the recipe's per-epoch strategies are for training; the Trainer refuses them without
        training_args.eval_strategy, training_args.load_best_model_at_end = IntervalStrategy.NO, False  # an eval set
    return model_args, data_args, training_args


@dataclass
class Actions:
    """The `--do_*` flags alone, as the user gave them."""

    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False


def flag_values(argv: list[str]) -> dict[str, str | list[str]]:
    """Each flag of `argv` and the value it was given (the last occurrence wins, as in argparse; `True` for a flag
    without value, a list for several values)."""
    values, key = {}, None
    for token in argv:
        if token.startswith("--"):
            key, _, value = token[2:].partition("=")
            values[key] = value if value else True
        elif key is not None:
            previous = values[key]
            values[key] = token if previous is True else [*previous, token] if isinstance(previous, list) else [previous, token]
    return values


def follow_strategies(settings: dict, given: set[str]) -> dict:
    """The recipe's evaluation and checkpoint schedules, kept in step with the one the user changed: the best
    checkpoint is chosen among evaluated ones, so `--save_strategy steps --save_steps 5` alone evaluates every 5 steps
    too, and `--eval_strategy no` alone turns off what needs evaluations (best-checkpoint choice, early stopping).
    Returns the values to change (`None`: unset)."""
    changes = {}
    for mine, other in (("save", "eval"), ("eval", "save")):
        if f"{mine}_strategy" in given and f"{other}_strategy" not in given:
            changes[f"{other}_strategy"] = settings[f"{mine}_strategy"]
            if f"{mine}_steps" in given and f"{other}_steps" not in given:
                changes[f"{other}_steps"] = settings[f"{mine}_steps"]
    if str(changes.get("eval_strategy", settings.get("eval_strategy"))).lower() == "no":
        changes.update({key: None for key in ("load_best_model_at_end", "early_stopping_patience") if key not in given})
    return changes


def check_flags(parser: HfArgumentParser, argv: list[str], source: str = "") -> None:
    """Stop with one line naming an unknown flag and the closest known one (`--no_use_tla` -> `--use_tla false`)."""
    known = {option for action in parser._actions for option in action.option_strings}
    for flag in (token.split("=", 1)[0] for token in argv if token.startswith("--")):
        if flag in known:
            continue
        negated = "--" + flag[len("--no_"):]
        if flag.startswith("--no_") and negated in known:
            hint = f"{negated} false"
        else:
            hint = next(iter(difflib.get_close_matches(flag, sorted(known), n=1, cutoff=0.5)), None)
        raise SystemExit(f"run_htc.py: error: unknown flag {flag}{source}" + (f" (did you mean {hint}?)" if hint else ""))


def settings_to_argv(settings: dict) -> list[str]:
    argv = []
    for key, value in settings.items():
        values = value if isinstance(value, list) else [value]
        argv += [f"--{key}", *[str(v).lower() if isinstance(v, bool) else str(v) for v in values]]
    return argv


def read_mapping(path: str, content: str, expected: str) -> dict:
    """The mapping in a YAML (`.yaml`, `.yml`) or JSON file; a `ValueError` naming the file, and what it should hold,
    when it cannot be read or holds something else."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        value = yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read {content} ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected {expected}")
    return value


# The key an exported folder's config.json records its export under (`modeling_htla.onnx_model.EXPORT_KEY`, not
# imported here: onnxruntime is optional).
ONNX_EXPORT_KEY = "onnx_export"


def checkpoint_kind(name_or_path: str | None) -> str | None:
    """`"pytorch"` for a trained HTLA checkpoint, `"onnx"` for one exported by `python -m modeling_htla.onnx`, `None`
    for anything else (a text encoder)."""
    if name_or_path is None:
        return None
    try:
        config, _ = PretrainedConfig.get_config_dict(name_or_path)
    except OSError:
        return None
    if config.get("model_type") != "htla":
        return None
    return "onnx" if ONNX_EXPORT_KEY in config else "pytorch"


def uses_embedded_data(data_args) -> bool:
    """Whether no data argument was given, so the embedded ICD-10-CM data is used."""
    return not any([data_args.dataset_name, data_args.train_file, data_args.validation_file, data_args.test_file])


def prepare_data(model_args, data_args, training_args):
    """Raw splits and the taxonomy, validated before anything is written."""
    kind = checkpoint_kind(model_args.model_name_or_path)
    checkpoint = kind is not None
    if kind == "onnx" and (training_args.do_train or training_args.do_eval):
        raise ValueError(f"{model_args.model_name_or_path}: an ONNX export only classifies (--do_predict); train or "
                         "evaluate the PyTorch checkpoint it was exported from")
    if not uses_embedded_data(data_args):
        raw = load_raw_datasets(
            train_file=data_args.train_file,
            validation_file=data_args.validation_file,
            test_file=data_args.test_file,
            dataset_name=data_args.dataset_name,
            dataset_config_name=data_args.dataset_config_name,
            text_column=data_args.text_column,
            label_column=data_args.label_column,
            label_separator=data_args.label_separator,
            cache_dir=model_args.cache_dir,
            skip_empty_texts=data_args.skip_empty_texts,
        )
        names_file, names = data_args.label_names_file, None
        if names_file is not None:
            names = read_mapping(names_file, "label names", "a JSON object {label: name}")
        if checkpoint:
            taxonomy = HTLAModel.config_class.from_pretrained(model_args.model_name_or_path).get_taxonomy()
            if data_args.taxonomy_file and kind == "onnx":
                raise ValueError(f"{data_args.taxonomy_file}: an ONNX export keeps the taxonomy it was exported with; "
                                 "extend the PyTorch checkpoint, then export it again")
            if data_args.taxonomy_file:  # a bigger taxonomy: its new labels come after the checkpoint's own
                bigger = build_taxonomy(raw, data_args.taxonomy_file, names)
                try:
                    taxonomy = taxonomy.extended_by(bigger)
                except ValueError as err:
                    raise ValueError(f"{data_args.taxonomy_file}: {err}") from None
        else:
            taxonomy = build_taxonomy(raw, data_args.taxonomy_file, names)
    else:
        logger.info("No data arguments: using the embedded ICD-10-CM dataset (depth %d)", data_args.icd10_depth)
        raw, taxonomy = load_icd10cm(depth=data_args.icd10_depth, seed=training_args.seed)
    if training_args.do_train and "train" not in raw:
        raise ValueError("--do_train needs --train_file or --dataset_name with a train split")
    if training_args.do_train and "validation" not in raw:
        raw["train"], raw["validation"] = split_validation(
            raw["train"], data_args.validation_split_percentage / 100, seed=training_args.seed
        )
    if training_args.do_eval and "validation" not in raw:
        raise ValueError("--do_eval needs --validation_file (or a train split to split one from)")
    if training_args.do_predict and "test" not in raw:
        raise ValueError("--do_predict needs --test_file (or a dataset with a test split)")
    needed = {"train": training_args.do_train, "validation": training_args.do_train or training_args.do_eval,
              "test": training_args.do_predict}
    for split in [split for split in raw if not needed.get(split, False) and split != "train"]:
        del raw[split]  # not used: skip encoding and tokenizing it (train stays for the label frequencies)
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples, "test": data_args.max_predict_samples}
    for split, limit in limits.items():
        if split in raw and limit is not None:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))
    for split in [split for split in raw if "labels" in raw[split].column_names]:  # documents to classify may have none
        raw[split] = encode_labels(raw[split], taxonomy, add_ancestors=data_args.add_ancestors, source=split)
    return raw, taxonomy, kind


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model")


def build_model(model_args, taxonomy: Taxonomy, kind: str | None) -> tuple[HTLAModel, object]:
    """The model and tokenizer: a checkpoint's (`kind` "pytorch"; "onnx": an `HTLAOnnxModel`), or a fresh HTLA on the
    encoder `--model_name_or_path` with the model flags."""
    if kind is not None:
        path = model_args.model_name_or_path
        if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
            raise OSError(f"{path}: no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}); save the tokenizer with the model")
        if kind == "onnx":
            try:
                from modeling_htla.onnx_model import HTLAOnnxModel
            except ImportError as err:
                raise OSError(f"{path}: an ONNX export needs onnxruntime ({err}); pip install onnxruntime") from None
            model = HTLAOnnxModel.from_pretrained(path, cache_dir=model_args.cache_dir,
                                                  session_options=shared_session_options(path))
        else:
            model = HTLAModel.from_pretrained(path, cache_dir=model_args.cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir)
        return model, tokenizer
    encoder = resolve_encoder(model_args.model_name_or_path)
    model = HTLAModel.from_encoder(
        encoder,
        taxonomy=taxonomy,
        pooling=model_args.pooling,
        fusion=model_args.fusion,
        use_graph_encoder=model_args.use_graph_encoder,
        use_tla=model_args.use_tla and model_args.use_graph_encoder,  # TLA aligns texts with the graph's labels
        tla_weight=model_args.tla_weight,
        tla_temperature=model_args.tla_temperature,
        cosine_scale_init=model_args.cosine_scale_init,
        tla_projection_dim=model_args.tla_projection_dim,
        negative_mining=model_args.negative_mining,
        num_negatives=model_args.num_negatives,
        graph_num_layers=model_args.graph_num_layers,
        graph_hidden_size=model_args.graph_hidden_size,
        graph_num_heads=model_args.graph_num_heads,
        edge_dim=model_args.edge_dim,
        graph_attention=model_args.graph_attention,
        graph_max_hops=model_args.graph_max_hops,
        graph_max_siblings=model_args.graph_max_siblings,
        graph_labels_per_step=model_args.graph_labels_per_step,
        graph_refresh_steps=model_args.graph_refresh_steps,
        classifier_dropout=model_args.classifier_dropout,
    )
    return model, AutoTokenizer.from_pretrained(encoder)


def apply_small_data_rule(model_args, train_label_ids, taxonomy: Taxonomy) -> float | None:
    """Set `--cosine_scale_init` and `--init_weights_from_names`, those of the two not given, by the small-data rule
    when a fresh hybrid head is trained; return the training set's examples per leaf when the rule applied."""
    unset = model_args.cosine_scale_init is None or model_args.init_weights_from_names is None
    if not unset or model_args.fusion != "hybrid" or not model_args.use_graph_encoder:
        return None
    per_leaf = examples_per_leaf(train_label_ids, taxonomy.parent_ids)
    if per_leaf > SMALL_DATA_EXAMPLES_PER_LEAF:
        return None
    if model_args.cosine_scale_init is None:
        model_args.cosine_scale_init = SMALL_DATA_COSINE_SCALE
    if model_args.init_weights_from_names is None:
        model_args.init_weights_from_names = SMALL_DATA_NAMES_SCALE
    return per_leaf


def shared_session_options(path: str):
    """The export's saved session options, with the cores shared among this machine's processes when several run
    (`accelerate launch`) and the export leaves the thread count to ONNX Runtime, which would give every process a
    thread per core; `None` (the saved options as they are) for one process."""
    from modeling_htla.onnx_model import EXPORT_KEY, saved_session_options

    local = int(os.environ.get("LOCAL_WORLD_SIZE", PartialState().num_processes))
    if local == 1:
        return None
    config, _ = PretrainedConfig.get_config_dict(path)
    options = saved_session_options(config.get(EXPORT_KEY, {}).get("session_options"))
    if options is None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
    if not options.intra_op_num_threads:
        options.intra_op_num_threads = max(1, (os.cpu_count() or 1) // local)
    return options


def make_compute_metrics(taxonomy: Taxonomy, label_frequencies: list[int], threshold: float):
    """The htc_f1 metric on the Trainer's arrays, called directly (`htc_scores`): `evaluate`'s `compute` would first
    store the `[N, L]` arrays as Python lists (9 GB for 1,000 documents of the full ICD-10-CM tree)."""

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        return htc_scores(
            predictions=prediction.predictions,
            references=prediction.label_ids,
            parents=taxonomy.parent_ids,
            label_frequencies=label_frequencies,
            threshold=threshold,
            from_logits=True,
        )

    return compute_metrics


def calibrate(model: HTLAModel, tokenizer, raw: DatasetDict, max_seq_length: int) -> None:
    """Calibrate the labels without training examples on the texts to predict (test, else validation)."""
    split = "test" if "test" in raw else "validation" if "validation" in raw else None
    texts = raw[split]["text"][:] if split else []
    if len(texts) < MIN_CALIBRATION_TEXTS:
        logger.warning("New labels not calibrated: %d texts to predict, fewer than %d; their biases stay as set from "
                       "their names", len(texts), MIN_CALIBRATION_TEXTS)
        return
    shifts = model.calibrate_new_labels(texts, tokenizer, max_length=max_seq_length)
    logger.warning("Calibrated the biases of %d labels without training examples on the %d %s texts (mean shift "
                   "%+.2f)", len(shifts), len(texts), split, np.mean(list(shifts.values())))


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, training_args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    # The script's own summary lines (data, thresholds, how training stopped, test scores) show on the main process
    # unless --log_level asks otherwise; transformers' own logging keeps its level.
    passive = training_args.log_level == "passive" and training_args.should_log
    logger.setLevel(logging.INFO if passive else training_args.get_process_log_level())
    set_seed(training_args.seed)
    if data_args.decoding not in DECODING:
        raise SystemExit(f"run_htc.py: error: --decoding must be one of {DECODING}, got {data_args.decoding!r}")
    resume = training_args.resume_from_checkpoint
    if training_args.do_train and resume not in (None, "last", "true", "True") and not os.path.isdir(resume):
        raise SystemExit(f"run_htc.py: error: --resume_from_checkpoint {resume}: no such checkpoint folder")

    try:  # bad input ends here, in one line and before anything is written
        raw, taxonomy, kind = prepare_data(model_args, data_args, training_args)
        small = (apply_small_data_rule(model_args, raw["train"]["label_ids"], taxonomy)
                 if kind is None and training_args.do_train else None)
        model, tokenizer = build_model(model_args, taxonomy, kind)
        added = model.extend_taxonomy(taxonomy, tokenizer) if kind == "pytorch" else []  # a bigger --taxonomy_file
    except (ValueError, OSError) as err:
        raise SystemExit(f"run_htc.py: error: {' '.join(str(err).split())}") from None
    logger.info("Taxonomy: %s; splits: %s", taxonomy, {k: len(v) for k, v in raw.items()})
    if small is not None:
        names = model_args.init_weights_from_names
        logger.info("Small training set (%g examples per leaf, at most %d): the cosine scale starts at %g, the "
                    "classifier weights %s (--cosine_scale_init and --init_weights_from_names set them)", small,
                    SMALL_DATA_EXAMPLES_PER_LEAF, model_args.cosine_scale_init,
                    f"at the label names, scale {names:g}" if names else "at random")
    if added:
        shown = ", ".join(taxonomy.labels[j] for j in added[:5]) + (", …" if len(added) > 5 else "")
        logger.warning("Extended the checkpoint by %d labels (%s), scored from their names and places in the tree",
                       len(added), shown)  # shown at every log level: predictions now include labels never trained

    if added and data_args.calibrate_new_labels and not training_args.do_train:
        calibrate(model, tokenizer, raw, data_args.max_seq_length)

    train_label_ids = raw["train"]["label_ids"][:] if "train" in raw else None
    frequencies = None
    if train_label_ids is not None:
        flat = np.fromiter((i for ids in train_label_ids for i in ids), dtype=np.int64)
        frequencies = np.bincount(flat, minlength=len(taxonomy)).tolist()
    fixed_threshold = 0.5 if data_args.threshold is None else data_args.threshold
    if kind == "onnx":  # ONNX Runtime classifies the documents; there is nothing for a Trainer to do
        metrics = predict(model, tokenizer, raw["test"], taxonomy, data_args, training_args, train_label_ids,
                          frequencies, fixed_threshold)
        if metrics:
            save_results(training_args.output_dir, "predict", metrics)
        return

    def tokenize(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=data_args.max_seq_length)
        encoded["label_ids"] = batch["label_ids"]
        return encoded

    with training_args.main_process_first(desc="tokenization"):
        # train is kept for its label frequencies even when not training; tokenize it only when it is used. The test
        # documents are tokenized chunk by chunk as they are classified (classify_corpus).
        tokenized = DatasetDict({
            split: dataset.map(tokenize, batched=True, num_proc=data_args.preprocessing_num_workers,
                               remove_columns=dataset.column_names, desc=f"Tokenizing {split}")
            for split, dataset in raw.items() if split == "validation" or split == "train" and training_args.do_train
        })

    # The Trainer would contact the Hub at start-up; the finished folder is pushed once at the end instead.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    if model_args.init_bias_from_priors and training_args.do_train and kind is None:
        model.init_bias_from_priors(np.asarray(frequencies) / len(train_label_ids))
    if model_args.init_weights_from_names and training_args.do_train and kind is None:
        model.init_weights_from_names(tokenizer, model_args.init_weights_from_names)
    if training_args.do_train and model.config.labels_without_examples:  # labels added after an earlier training
        model.config.labels_without_examples = [
            label for label in model.config.labels_without_examples if not frequencies[taxonomy.label2id[label]]]
    compute_metrics = make_compute_metrics(taxonomy, frequencies, fixed_threshold)
    early_stopping = AnyMetricEarlyStopping(
        training_args.early_stopping_patience,
        training_args.early_stopping_metrics or [training_args.metric_for_best_model or "loss"],
    ) if training_args.early_stopping_patience and training_args.do_train else None
    trainer = HTLATrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized.get("train") if training_args.do_train else None,
        eval_dataset=tokenized.get("validation"),
        processing_class=tokenizer,
        data_collator=HTCDataCollator(tokenizer, num_labels=len(taxonomy)),
        compute_metrics=compute_metrics,
        callbacks=[early_stopping] if early_stopping else None,
    )

    if training_args.do_train:
        if resume in ("last", "true", "True"):  # the newest complete checkpoint in --output_dir, if any
            resume = last_complete_checkpoint(training_args.output_dir)
            if resume is None:  # not silent: a wrong --output_dir would otherwise retrain from step 0 unnoticed
                logger.warning("--resume_from_checkpoint %s: no complete checkpoint in %s; training from scratch",
                               training_args.resume_from_checkpoint, training_args.output_dir)
        if resume:
            logger.info("Resuming from %s", resume)
        result = trainer.train(resume_from_checkpoint=resume)
        outcome = training_outcome(trainer.state, early_stopping, training_args.num_train_epochs)
        logger.info("Training stopped after %s epochs (%s); kept the checkpoint of epoch %s", outcome["epochs_trained"],
                    outcome["stop_reason"], outcome["best_epoch"] if outcome["best_epoch"] is not None else "(last)")
        train_metrics = dict(result.metrics, train_samples=len(tokenized["train"]),
                             **{f"train_{key}": value for key, value in outcome.items() if value is not None})
        if model_args.init_weights_from_names and kind is None:  # how training started: not in the config
            train_metrics["train_init_weights_from_names"] = model_args.init_weights_from_names

    def learned_metrics(output, prefix: str) -> dict[str, float]:
        """The metrics at the model's learned thresholds, as `<prefix>_learned_*` (none without them)."""
        if model.config.decision_thresholds is None:
            return {}
        at_learned = make_compute_metrics(taxonomy, frequencies, np.asarray(model.config.label_thresholds()))
        scores = at_learned(EvalPrediction(predictions=output.predictions, label_ids=output.label_ids))
        return {f"{prefix}_learned_{key}": value for key, value in scores.items()}

    eval_metrics = {}
    if training_args.do_eval:
        output = trainer.predict(tokenized["validation"], metric_key_prefix="eval")
        metrics = eval_metrics = dict(output.metrics, eval_samples=len(tokenized["validation"]))
        learn = training_args.do_train if data_args.learn_thresholds is None else data_args.learn_thresholds
        if learn:
            choice = choose_thresholds(1 / (1 + np.exp(-output.predictions)), output.label_ids.astype(bool),
                                       taxonomy.depths, seed=training_args.seed)
            model.config.decision_thresholds = choice.levels
            logger.info(
                "Decision thresholds learned on validation: %s %s (Macro-F1 %.4f at 0.5, %.4f at them; on held-out "
                "halves %s)", choice.strategy, choice.levels, choice.macro_f1_fixed, choice.macro_f1,
                ", ".join(f"{name} {value:.4f}" for name, value in choice.cross_validated.items()),
            )
            metrics["eval_threshold_strategy"] = choice.strategy
            metrics.update({f"eval_threshold_cv_{name}_macro_f1": value for name, value in choice.cross_validated.items()})
        metrics.update(learned_metrics(output, "eval"))
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)

    if training_args.do_train:
        trainer.save_model()  # the best checkpoint when load_best_model_at_end, with its learned thresholds
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()

    metrics = {}
    if training_args.do_predict:
        metrics = predict(model, tokenizer, raw["test"], taxonomy, data_args, training_args, train_label_ids,
                          frequencies, fixed_threshold)
        trainer.log_metrics("predict", metrics)
        trainer.save_metrics("predict", metrics)

    if (training_args.do_train or added) and trainer.is_world_process_zero():
        if not training_args.do_train:
            trainer.save_model()  # the extended checkpoint (training saved its own), with the tokenizer
        write_card(model, tokenizer, model_args, data_args, training_args, raw,
                   metrics if training_args.do_predict else eval_metrics,
                   outcome if training_args.do_train else None)
        if push_to_hub:
            repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
            url = push_folder(training_args.output_dir, repo_id, token=training_args.hub_token,
                              private=training_args.hub_private_repo)
            logger.info("Pushed %s to %s", training_args.output_dir, url)


def predict(model, tokenizer, test, taxonomy: Taxonomy, data_args, training_args, train_label_ids, frequencies,
            fixed_threshold: float) -> dict[str, float]:
    """Classify the test documents into `predictions.<format>` chunk by chunk (`classify_corpus`, shared by every
    process); with labels, their metrics at `fixed_threshold`, at the learned thresholds (`predict_learned_*`) and
    of always predicting the most frequent training label set (`predict_baseline_*`). Empty on other processes."""
    rules = {"predict": fixed_threshold}
    if model.config.decision_thresholds is not None:
        rules["predict_learned"] = np.asarray(model.config.label_thresholds())
    baselines = {}
    if train_label_ids is not None:
        baselines["predict_baseline"] = list(Counter(tuple(ids) for ids in train_label_ids).most_common(1)[0][0])
    thresholds = np.asarray(model.config.label_thresholds()) if data_args.threshold is None else data_args.threshold
    state = PartialState()
    start = time.time()
    try:
        result = classify_corpus(
            model, tokenizer, test, taxonomy, Path(training_args.output_dir) / f"predictions.{data_args.predictions_format}",
            thresholds=thresholds, decoding=data_args.decoding, max_length=data_args.max_seq_length,
            batch_size=training_args.per_device_eval_batch_size, chunk_size=data_args.predict_chunk_size,
            top_k=data_args.predict_top_k, output_format=data_args.predictions_format,
            sort_by_length=data_args.predict_sort_by_length, metric_thresholds=rules, baselines=baselines,
            label_frequencies=frequencies, process_index=state.process_index, num_processes=state.num_processes,
            wait_for_everyone=state.wait_for_everyone, device=model.device,
        )
    except ValueError as err:
        raise SystemExit(f"run_htc.py: error: {err}") from None
    if result is None:
        return {}
    metrics = {"predict_loss": result.loss} if result.loss is not None else {}
    for rule, scores in result.metrics.items():
        kept = ("micro_f1", "macro_f1") if rule == "predict_baseline" else scores
        metrics.update({f"{rule}_{key}": scores[key] for key in kept})
    metrics.update(speed_metrics("predict", start, num_samples=result.documents,
                                 num_steps=math.ceil(result.documents / training_args.per_device_eval_batch_size)))
    metrics["predict_samples"] = result.documents
    if "predict_micro_f1" in metrics:
        logger.info(
            "Test Micro-F1 %.4f / Macro-F1 %.4f at %s%s (most-frequent-label baseline %s)",
            metrics["predict_micro_f1"],
            metrics["predict_macro_f1"],
            fixed_threshold,
            f"; {metrics['predict_learned_micro_f1']:.4f} / {metrics['predict_learned_macro_f1']:.4f} at the "
            f"learned thresholds {model.config.decision_thresholds}" if "predict_learned_micro_f1" in metrics else "",
            f"{metrics['predict_baseline_micro_f1']:.4f} / {metrics['predict_baseline_macro_f1']:.4f}"
            if "predict_baseline_micro_f1" in metrics
            else "n/a",
        )
    return metrics


def save_results(output_dir: str, split: str, metrics: dict) -> None:
    """`<split>_results.json` and the merged `all_results.json`, as the Trainer's `save_metrics` writes them, for the
    runs that have no Trainer (an ONNX export classifying)."""
    log = ", ".join(f"{key} = {value:.4f}" if isinstance(value, float) else f"{key} = {value}"
                    for key, value in sorted(metrics.items()))
    logger.info("%s metrics: %s", split, log)
    path = Path(output_dir) / "all_results.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    write_atomic(Path(output_dir) / f"{split}_results.json", json.dumps(metrics, indent=4, sort_keys=True))
    write_atomic(path, json.dumps(merged | metrics, indent=4, sort_keys=True))


def base_model_id(name_or_path: str | None) -> str | None:
    """The Hub id of the model trained from, for the card's `base_model`: the packaged default encoder's id, a Hub id
    as given; `None` for a local folder, whose Hub origin is unknown."""
    if name_or_path in (None, "", "all-MiniLM-L6-v2"):
        return DEFAULT_ENCODER_NAME
    return None if os.path.isdir(name_or_path) else name_or_path


def write_card(model, tokenizer, model_args, data_args, training_args, raw, metrics, outcome=None) -> None:
    """README.md of the saved checkpoint, with widget examples from the validation (else test) data and the model's
    scores."""
    data_file = data_args.train_file or data_args.test_file
    dataset = data_args.dataset_name or (Path(data_file).parent.name if data_file else "ICD-10-CM")
    split = "test" if training_args.do_predict else "validation"
    source = next((raw[split] for split in ("validation", "test") if split in raw), None)
    examples = source["text"][:3] if source is not None else []
    card = model_card(
        model.config,
        model_name=training_args.hub_model_id or Path(training_args.output_dir).name,
        dataset_name=dataset,
        metrics={k.replace("predict_", "test_", 1).replace("eval_", "validation_", 1): v for k, v in metrics.items()},
        metrics_split=split,
        widget=widget_examples(model, tokenizer, [" ".join(text.split())[:300] for text in examples]),
        training_arguments=training_args.to_dict(),
        base_model=base_model_id(model_args.model_name_or_path),
        datasets=[data_args.dataset_name] if data_args.dataset_name else None,
        license=model_args.license,
        language=model_args.language or (["en"] if uses_embedded_data(data_args) else None),
        training_outcome=outcome,
    )
    write_atomic(Path(training_args.output_dir) / "README.md", str(card))


if __name__ == "__main__":
    main()
