"""Shared fixtures: tiny random encoders (BERT and the other families) and small taxonomies, all built in memory
(no network)."""

import os

# The suite never reaches the network, however pytest is started: these are set before anything reads them (the
# libraries read them at import) and override what the environment says, a value of 0 included.
OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False", "DO_NOT_TRACK": "1",
}
os.environ.update(OFFLINE_ENVIRONMENT)

import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import HfApi  # noqa: E402
from huggingface_hub.utils import filter_repo_objects  # noqa: E402
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel  # noqa: E402

from modeling_htla import HTLAConfig, HTLAModel, Taxonomy, resolve_encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Shared data sits beside the repository (`../shared/data`), found from the repository root: never from an absolute
# path or the working directory.
SHARED_DATA = ROOT.parent / "shared" / "data"

# First lines of a script for a fresh interpreter that can import neither this repository nor the installed package,
# as on a machine that only downloaded a checkpoint.
WITHOUT_PROJECT = f"""
import importlib.util, sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in (f if isinstance(f, type) else type(f)).__module__]
sys.path_importer_cache.clear()
sys.path = [p for p in sys.path if p and p.rstrip("/") != {str(ROOT)!r}]
assert importlib.util.find_spec("modeling_htla") is None and importlib.util.find_spec("configuration_htla") is None
"""


def tiny_text_config(**overrides) -> BertConfig:
    values = dict(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64,
    )
    values.update(overrides)
    return BertConfig(**values)


def chain_taxonomy(depth: int, branching: int = 2) -> Taxonomy:
    """A full tree of the given depth: labels 'n', 'n.0', 'n.0.1', …"""
    parents = {}
    frontier = [(f"t{i}", None) for i in range(branching)]
    for level in range(depth):
        next_frontier = []
        for label, parent in frontier:
            parents[label] = parent
            if level + 1 < depth:
                next_frontier += [(f"{label}.{k}", label) for k in range(branching)]
        frontier = next_frontier
    return Taxonomy.from_parents(parents)


def make_model(taxonomy: Taxonomy, seed: int = 0, **config_kwargs) -> HTLAModel:
    torch.manual_seed(seed)
    name_ids = [[(5 + 7 * i + k) % 120 for k in range(1 + i % 3)] for i in range(len(taxonomy))]
    config = HTLAConfig(
        text_config=tiny_text_config(), taxonomy=taxonomy.to_dict(), label_name_ids=name_ids, **config_kwargs
    )
    return HTLAModel(config)


# The 20 Newsgroups label tree (HiAGM format): 34 labels, 3 levels, fan-out <= 7.
NEWSGROUPS_TAXONOMY = """Root\talt\tcomp\tmisc\trec\tsci\tsoc\ttalk
alt\talt.atheism
comp\tcomp.graphics\tcomp.os\tcomp.sys\tcomp.windows
comp.os\tcomp.os.ms-windows.misc
comp.sys\tcomp.sys.ibm.pc.hardware\tcomp.sys.mac.hardware
comp.windows\tcomp.windows.x
misc\tmisc.forsale
rec\trec.autos\trec.motorcycles\trec.sport
rec.sport\trec.sport.baseball\trec.sport.hockey
sci\tsci.crypt\tsci.electronics\tsci.med\tsci.space
soc\tsoc.religion
soc.religion\tsoc.religion.christian
talk\ttalk.politics\ttalk.religion
talk.politics\ttalk.politics.guns\ttalk.politics.mideast\ttalk.politics.misc
talk.religion\ttalk.religion.misc
"""


@pytest.fixture
def small_taxonomy() -> Taxonomy:
    return Taxonomy.from_parents(
        {"a": None, "b": None, "a1": "a", "a2": "a", "b1": "b", "a11": "a1", "a12": "a1"},
        names={"a": "Alpha topics", "a1": "Alpha one"},
    )


TOPICS = {
    "sport": {"football": "goal match striker referee", "tennis": "serve racket wimbledon volley"},
    "science": {"physics": "quantum particle energy photon", "biology": "cell gene protein enzyme"},
}


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory):
    """A tiny random BERT saved like a Hub model, with the real uncased BERT tokenizer."""
    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None))
    torch.manual_seed(0)
    BertModel(tiny_text_config(vocab_size=tokenizer.vocab_size, max_position_embeddings=128)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def labels_of(taxonomy: Taxonomy, vector) -> list[str]:
    """The labels a multi-hot vector holds, in taxonomy order."""
    return [label for label, value in zip(taxonomy.labels, vector) if value > 0.5]


def path_ends(taxonomy: Taxonomy, probabilities, threshold) -> list[int]:
    """Ends of the predicted paths, best first: labels above the threshold (one number, or one per label) with every
    ancestor, none of whose children is; computed here by walking the tree, independently of the package's decoder."""
    limits = [threshold] * len(taxonomy) if isinstance(threshold, (int, float)) else list(threshold)
    kept = [all(probabilities[a] > limits[a] for a in taxonomy.ancestors(j)) for j in range(len(taxonomy))]
    ends = [j for j in range(len(taxonomy)) if kept[j] and not any(kept[c] for c in taxonomy.children[j])]
    return sorted(ends, key=lambda j: -float(probabilities[j]))


@pytest.fixture
def training_steps(monkeypatch) -> list[int]:
    """The global step at every batch `HTLATrainer` trains on in this process, in order: what a run really trained,
    which its saved state (restored from the checkpoint on a resume) cannot tell."""
    from modeling_htla import HTLATrainer

    steps = []
    original = HTLATrainer.training_step

    def counted(self, *args, **kwargs):
        steps.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HTLATrainer, "training_step", counted)
    return steps


def micro_f1_of_predictions(predictions_file, test_file) -> float:
    """Micro-F1 of a run's predictions.jsonl against a JSON Lines test file (a path string "top > leaf" in `labels`,
    or HGCLR's `doc_label` list: gold top and leaf), counted label by label, independently of the package's metric."""
    predicted = [set(json.loads(line)["labels"]) for line in Path(predictions_file).read_text().splitlines()]
    rows = [json.loads(line) for line in Path(test_file).read_text().splitlines()]
    gold = [set(row["labels"].split(" > ") if "labels" in row else row["doc_label"]) for row in rows]
    assert len(predicted) == len(gold)
    right = sum(len(p & g) for p, g in zip(predicted, gold))
    total = sum(map(len, predicted)) + sum(map(len, gold))
    return 2 * right / total if total else 0.0


def decided_micro_f1(predict_results: dict) -> float:
    """The test Micro-F1 of the labels a run wrote to predictions.jsonl: at the thresholds it learned on validation
    when it learned them (`predict_learned_micro_f1`), else at the fixed threshold."""
    return predict_results.get("predict_learned_micro_f1", predict_results["predict_micro_f1"])


def screenshot_demo():
    """docs/screenshot_demo.py (the script of docs/hub.md's screenshot) as a module: its browser code and its
    `free_port` serve the tests too."""
    if "screenshot_demo" not in sys.modules:
        spec = importlib.util.spec_from_file_location("screenshot_demo", ROOT / "docs" / "screenshot_demo.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["screenshot_demo"] = module
    return sys.modules["screenshot_demo"]


def two_cpu_processes_launcher() -> list[str]:
    """`accelerate launch` of two CPU processes on a free port: tests running side by side (pytest-xdist) would
    otherwise both rendezvous on the default port 29500."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(screenshot_demo().free_port())]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


# Readable names that differ from the identifiers, so tests can tell which one a view shows.
LABEL_NAMES = {"science": "Natural sciences", "sport": "Sports", "biology": "Life sciences", "physics": "Physics",
               "football": "Association football", "tennis": "Lawn tennis"}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    rows = []
    for i in range(48):
        top = sorted(TOPICS)[i % 2]
        leaf = sorted(TOPICS[top])[(i // 2) % 2]
        rows.append({"text": f"{TOPICS[top][leaf]} example {i}", "labels": f"{top} > {leaf}"})
    write_jsonl(path / "train.jsonl", rows[:32])
    write_jsonl(path / "validation.jsonl", rows[32:40])
    write_jsonl(path / "test.jsonl", rows[40:])
    (path / "labels.taxonomy").write_text(
        "Root\tscience\tsport\nscience\tbiology\tphysics\nsport\tfootball\ttennis\n", encoding="utf-8"
    )
    (path / "label_names.json").write_text(json.dumps(LABEL_NAMES), encoding="utf-8")
    return path


# Encoder families users pick for classification, with what sets each apart. Every one is tiny and random.
ENCODER_FAMILIES = ["bert", "roberta", "xlm-roberta", "deberta-v2", "distilbert", "electra", "modernbert"]
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _byte_level_vocab(specials: list[str]) -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {token: i for i, token in enumerate(specials + list(bytes_to_unicode().values()))}


def _unigram_vocab(specials: list[str]) -> list[tuple[str, float]]:
    return [(token, 0.0) for token in specials] + [("\u2581", -2.0)] + [(c, -3.0) for c in LETTERS] + [
        ("\u2581" + c, -2.5) for c in LETTERS]


def tiny_tokenizer(family: str):
    """A tokenizer of the family's own kind (byte-level BPE, SentencePiece unigram, WordPiece), built offline."""
    from transformers import (DebertaV2Tokenizer, DistilBertTokenizer, ElectraTokenizer, PreTrainedTokenizerFast,
                              RobertaTokenizer, XLMRobertaTokenizer)

    if family in ("bert", "distilbert", "electra"):  # the packaged uncased WordPiece vocabulary
        cls = {"bert": AutoTokenizer, "distilbert": DistilBertTokenizer, "electra": ElectraTokenizer}[family]
        return cls.from_pretrained(resolve_encoder(None))
    if family == "roberta":
        return RobertaTokenizer(vocab=_byte_level_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]), merges=[])
    if family == "xlm-roberta":
        return XLMRobertaTokenizer(vocab=_unigram_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    if family == "deberta-v2":
        return DebertaV2Tokenizer(vocab=_unigram_vocab(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]), unk_id=3)
    if family == "modernbert":  # byte-level BPE with [CLS] … [SEP] and no token_type_ids, as answerdotai/ModernBERT
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

        vocab = _byte_level_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        return PreTrainedTokenizerFast(
            tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
            mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"])
    raise ValueError(f"unknown encoder family {family!r}")


def tiny_encoder_config(family: str, tokenizer, positions: int = 64):
    """Hidden size 32, 2 layers, `positions` usable token positions (RoBERTa-style encoders get 2 more)."""
    size = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=positions, pad_token_id=tokenizer.pad_token_id)
    extra = {
        "roberta": dict(max_position_embeddings=positions + 2, bos_token_id=0, eos_token_id=2),
        "xlm-roberta": dict(max_position_embeddings=positions + 2, bos_token_id=0, eos_token_id=2),
        "deberta-v2": dict(relative_attention=True, position_biased_input=False, pos_att_type=["p2c", "c2p"],
                           type_vocab_size=0),  # as DeBERTa-v3
        "electra": dict(embedding_size=32),
        "modernbert": dict(cls_token_id=2, sep_token_id=3, bos_token_id=2, eos_token_id=3, local_attention=16,
                           global_attn_every_n_layers=2),
    }.get(family, {})
    if family == "distilbert":
        size = dict(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                    max_position_embeddings=positions, pad_token_id=tokenizer.pad_token_id)
    return AutoConfig.for_model(family, **{**size, **extra})


def save_tiny_encoder(family: str, folder, positions: int = 64) -> str:
    """A random encoder of the family and its tokenizer, saved like a Hub model."""
    tokenizer = tiny_tokenizer(family)
    torch.manual_seed(0)
    AutoModel.from_config(tiny_encoder_config(family, tokenizer, positions)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def trained(encoder_dir, data_dir, tmp_path_factory):
    """A tiny HTLA trained by run_htc.py in-process with --push_to_hub, the Hub calls intercepted."""
    sys.path.insert(0, str(ROOT))
    import run_htc

    calls = {}

    def fake_upload(self, repo_id, folder_path, ignore_patterns=None, **kw):
        files = [str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()]
        calls["upload"] = (repo_id, sorted(filter_repo_objects(files, ignore_patterns=ignore_patterns)))
        calls["card"] = (Path(folder_path) / "README.md").read_text()
        return "https://huggingface.co/org/htla-tiny/commit/0"

    out = tmp_path_factory.mktemp("hub") / "htla-tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", (repo_id, kw)))
        patch.setattr(HfApi, "upload_folder", fake_upload)
        run_htc.main([
            "--model_name_or_path", encoder_dir,
            "--train_file", str(data_dir / "train.jsonl"), "--validation_file", str(data_dir / "validation.jsonl"),
            "--test_file", str(data_dir / "test.jsonl"), "--taxonomy_file", str(data_dir / "labels.taxonomy"),
            "--label_names_file", str(data_dir / "label_names.json"),
            "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict", "--max_steps", "4",
            "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--max_seq_length", "16",
            "--head_learning_rate", "1e-3", "--graph_learning_rate", "1e-3", "--warmup_steps", "0",  # as before the recipe
            "--eval_strategy", "steps", "--eval_steps", "2", "--save_steps", "2", "--report_to", "none",
            "--push_to_hub", "--hub_model_id", "org/htla-tiny",
        ])
    return out, calls


@pytest.fixture(scope="session")
def icd10cm_trained(encoder_dir, tmp_path_factory):
    """The embedded default run (`python run_htc.py` with no arguments: ICD-10-CM chapter > block, 307 labels with
    their names) with its own settings, on the tiny encoder and 64 training codes (one epoch of 2 steps)."""
    sys.path.insert(0, str(ROOT))
    import run_htc

    out = tmp_path_factory.mktemp("icd10cm") / "htla-icd10cm"
    run_htc.main(run_htc.settings_to_argv(run_htc.DEFAULT_RUN | {
        "model_name_or_path": encoder_dir, "output_dir": str(out), "max_train_samples": 64, "max_eval_samples": 16,
        "max_predict_samples": 16, "per_device_eval_batch_size": 16, "warmup_steps": 0, "logging_steps": 1,
        "report_to": "none",
    }))
    return out


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module, its sibling modules (`common`, `report_quality`) imported as the script
    imports them."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module
