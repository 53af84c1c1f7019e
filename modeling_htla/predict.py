"""Classifying a corpus in bounded memory (`run_htc.py --do_predict`).

Documents are taken in chunks of `chunk_size`. Each chunk is scored batch by batch, longest texts first so that each
batch is padded to its own longest text (`length_sorted_batches`), decided, put back in input order and written as
a part file, with the metric counts of its documents (`htc_counts`) beside it. Memory depends on the batch and chunk
sizes, never on the number of documents: no `[N, L]` matrix is held, each chunk's rows are read through a memory map
closed after them (`read_rows`), and the memory a chunk freed is given back before the next (`release_freed_memory`).

Every part is complete or absent (written beside, then renamed) and records a digest of what it was computed from
(the model, the settings, the chunk's documents), so a killed run started again with the same command keeps the
finished chunks and computes the others. Several processes (`accelerate launch`) take every n-th chunk; the main
process then joins the parts in input order into the output file, itself written beside and renamed, and sums the
counts into the metrics.
"""

from __future__ import annotations

import csv
import ctypes
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from safetensors import safe_open
from safetensors.numpy import save_file
from tqdm.auto import tqdm

from .batching import length_sorted_batches
from .collator import HTCDataCollator
from .data import ID_COLUMN
from .decoding import decode_scores, prediction_records
from .io import replaced_atomically, write_atomic
from .metrics import check_parents, htc_counts, htc_decisions, scores_from_counts
from .taxonomy import Taxonomy

logger = logging.getLogger(__name__)

PREDICTION_FORMATS = ("jsonl", "csv", "parquet")
PARTS_SUFFIX = ".parts"  # beside the output file: `predictions.jsonl.parts/`
# Columns of the CSV and Parquet outputs; lists and the top-k are JSON strings in CSV.
TABLE_COLUMNS = ("id", "labels", "names", "scores", "paths", "top_k")
PER_LABEL_COUNTS = ("right", "predicted", "gold")  # the other counts of `htc_counts` are totals, stored as [1]


@dataclass
class CorpusResult:
    """What the main process gets back: the number of documents, the scores of every decision rule asked for (only
    when the documents have labels) and the mean loss of the model over them (PyTorch models with labels)."""

    documents: int
    metrics: dict[str, dict[str, float]]
    loss: float | None = None


def classify_corpus(
    model,
    tokenizer,
    dataset,
    taxonomy: Taxonomy,
    output_file: str | Path,
    thresholds: float | np.ndarray,
    decoding: str = "threshold",
    max_length: int = 128,
    batch_size: int = 64,
    chunk_size: int = 1024,
    top_k: int = 0,
    output_format: str = "jsonl",
    sort_by_length: bool = True,
    metric_thresholds: dict[str, float | np.ndarray] | None = None,
    baselines: dict[str, list[int]] | None = None,
    label_frequencies: list[int] | None = None,
    process_index: int = 0,
    num_processes: int = 1,
    wait_for_everyone: Callable[[], None] = lambda: None,
    device: str | torch.device = "cpu",
) -> CorpusResult | None:
    """Classify `dataset` (``text``, optionally ``id`` and ``label_ids``) and write `output_file` (one record per
    document, in input order: `id`, the labels decided at `thresholds` with `decoding`, their names, scores and
    paths, the `top_k` best labels) as JSON Lines, CSV or Parquet.

    With ``label_ids``, every entry of `metric_thresholds` (a name and a threshold, one or one per label, on the
    model's sigmoid scores) and of `baselines` (a name and the label ids predicted for every document) is scored
    from counts summed over the chunks. Returns a `CorpusResult` on the main process, `None` on the others.
    """
    if output_format not in PREDICTION_FORMATS:
        raise ValueError(f"predictions format must be one of {PREDICTION_FORMATS}, got {output_format!r}")
    if chunk_size < 1 or top_k < 0:
        raise ValueError(f"chunk_size must be at least 1 and top_k at least 0, got {chunk_size} and {top_k}")
    output_file = Path(output_file)
    parts = output_file.with_name(output_file.name + PARTS_SUFFIX)
    labelled = "label_ids" in dataset.column_names
    rules = {name: limit for name, limit in (metric_thresholds or {}).items()} if labelled else {}
    constant = {name: ids for name, ids in (baselines or {}).items()} if labelled else {}
    settings = settings_digest(model, taxonomy, thresholds, decoding, max_length, batch_size, chunk_size, top_k,
                               sort_by_length, rules, constant)
    chunks = [(start, min(start + chunk_size, len(dataset))) for start in range(0, len(dataset), chunk_size)]
    mine = [c for c in range(len(chunks)) if c % num_processes == process_index]
    todo = [c for c in mine if part_key(parts, c) is None]  # finished parts are kept if their documents are the same
    for c in sorted(set(mine) - set(todo)):
        if part_key(parts, c) != chunk_digest(settings, read_rows(dataset, *chunks[c]), chunks[c][0]):
            todo.append(c)
    todo.sort()
    logger.info("Classifying %d documents in %d chunks; process %d of %d: %d chunks, %d already done", len(dataset),
                len(chunks), process_index, num_processes, len(mine), len(mine) - len(todo))
    collator = HTCDataCollator(tokenizer, num_labels=len(taxonomy))
    par, depth = check_parents(taxonomy.parent_ids)
    model.eval()
    with tqdm(total=sum(chunks[c][1] - chunks[c][0] for c in todo), unit="doc", disable=process_index != 0,
              desc=f"Classifying ({num_processes} processes)" if num_processes > 1 else "Classifying") as bar:
        for c in todo:
            start, end = chunks[c]
            rows = read_rows(dataset, start, end)
            key = chunk_digest(settings, rows, start)
            lines, counts = classify_chunk(model, tokenizer, collator, rows, start, taxonomy, par, depth,
                                           thresholds, decoding, max_length, batch_size, top_k, sort_by_length,
                                           rules, constant, device, bar)
            write_atomic(parts / f"chunk-{c:06d}.jsonl", "".join(lines))
            with replaced_atomically(parts / f"chunk-{c:06d}.safetensors") as tmp:  # last: marks the chunk done
                save_file(counts, str(tmp), metadata={"key": key})
            del rows, lines, counts
            release_freed_memory()
    wait_for_everyone()
    if process_index != 0:
        return None
    totals = {}
    for c in range(len(chunks)):
        with safe_open(str(parts / f"chunk-{c:06d}.safetensors"), framework="numpy") as handle:
            for name in handle.keys():
                totals[name] = totals.get(name, 0) + handle.get_tensor(name)
    join_parts(parts, len(chunks), output_file, output_format, dataset)
    shutil.rmtree(parts, ignore_errors=True)
    metrics = {}
    for name in [*rules, *constant]:
        fields = {field.split("/", 1)[1]: value for field, value in totals.items() if field.startswith(f"{name}/")}
        counts = {field: value if field in PER_LABEL_COUNTS else value[0] for field, value in fields.items()}
        metrics[name] = scores_from_counts(counts, par, depth, label_frequencies)
    loss = float(totals["loss_sum"][0] / len(dataset)) if "loss_sum" in totals else None
    return CorpusResult(documents=len(dataset), metrics=metrics, loss=loss)


def classify_chunk(model, tokenizer, collator, rows: dict, start: int, taxonomy: Taxonomy, par, depth, thresholds,
                   decoding, max_length, batch_size, top_k, sort_by_length, rules, constant, device, bar):
    """One chunk's JSON lines, in input order, and its counts (`<rule>/<count>` arrays, `loss_sum`)."""
    texts = rows["text"]
    ids = rows[ID_COLUMN] if ID_COLUMN in rows else list(range(start, start + len(texts)))  # else the row index
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    features = [{key: encoded[key][i] for key in encoded} for i in range(len(texts))]
    if "label_ids" in rows:
        for feature, label_ids in zip(features, rows["label_ids"]):
            feature["label_ids"] = label_ids
    if sort_by_length:
        batches = length_sorted_batches([len(ids_) for ids_ in encoded["input_ids"]], batch_size)
    else:
        batches = [np.arange(i, min(i + batch_size, len(texts))) for i in range(0, len(texts), batch_size)]
    lines = [""] * len(texts)
    counts = {"documents": np.array([len(texts)], dtype=np.int64)}
    for index in batches:
        batch = collator([features[i] for i in index])
        gold = batch.pop("labels", None)
        inputs = {key: value.to(device) for key, value in batch.items()}
        if gold is not None and isinstance(model, torch.nn.Module):
            inputs["labels"] = gold.to(device)
        with torch.no_grad():
            output = model(**inputs)
        logits = output.logits.float().cpu().numpy()
        if getattr(output, "loss", None) is not None:  # the Trainer's loss: per batch, weighted by its documents
            counts["loss_sum"] = counts.get("loss_sum", 0) + np.array([float(output.loss) * len(index)])
        scores = 1 / (1 + np.exp(-logits))
        chosen = decode_scores(scores, taxonomy, thresholds, decoding)
        for i, record in zip(index, prediction_records(scores, taxonomy, chosen, top_k)):
            lines[i] = json.dumps({"id": ids[i], **record}, ensure_ascii=False) + "\n"
        if gold is not None:
            gold = gold.numpy() == 1
            decisions = {name: htc_decisions(logits, limit, from_logits=True) for name, limit in rules.items()}
            for name, label_ids in constant.items():
                decisions[name] = np.zeros_like(gold)
                decisions[name][:, label_ids] = True
            for name, decided in decisions.items():
                for field, value in htc_counts(decided, gold, par, depth).items():
                    key = f"{name}/{field}"
                    counts[key] = counts.get(key, 0) + np.atleast_1d(value)
        bar.update(len(index))
    return lines, counts


@functools.cache
def _malloc_trim():
    """glibc's `malloc_trim`, or `None` where the C library has none (musl, macOS, Windows)."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


def release_freed_memory() -> None:
    """Give the memory a finished chunk freed back to the system. glibc otherwise keeps freed blocks for reuse, and
    the process's peak memory crept up with the number of chunks (docs/training.md, "Measured: speed and memory of
    corpus prediction"). Elsewhere it does nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def read_rows(dataset, start: int, end: int) -> dict:
    """`dataset[start:end]`. A dataset that is one Arrow file (as `run_htc.py` reads every input) is read through a
    memory map of its own, closed once the rows are copied out: the file pages it touched leave the process with it,
    so resident memory does not grow with the part of the file read so far. Other datasets are sliced as they are."""
    files = dataset.cache_files
    if len(files) == 1:  # no indices mapping: the file's rows are the dataset's rows
        own = Dataset.from_file(files[0]["filename"])
        if len(own) == len(dataset) and own.column_names == dataset.column_names:
            return own[start:end]
    return dataset[start:end]


def settings_digest(model, taxonomy: Taxonomy, *settings) -> str:
    """A digest of the model (configuration and weights) and of the settings a chunk's records depend on."""
    digest = hashlib.sha256(model.config.to_json_string().encode())
    digest.update(json.dumps([taxonomy.labels, taxonomy.parent_ids], ensure_ascii=False).encode())
    digest.update(json.dumps(settings, default=lambda value: np.asarray(value).tolist()).encode())
    if isinstance(model, torch.nn.Module):
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    else:  # an exported graph (`HTLAOnnxModel`; onnxruntime is optional, so imported here): its file
        from .onnx_model import EXPORT_KEY, ONNX_FILE

        path = os.path.join(model.name_or_path, getattr(model.config, EXPORT_KEY, {}).get("file", ONNX_FILE))
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def chunk_digest(settings: str, rows: dict, start: int) -> str:
    """A digest of one chunk's documents (their ids, texts and gold labels) under `settings`."""
    payload = [settings, start, rows["text"], rows.get(ID_COLUMN), rows.get("label_ids")]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False, default=str).encode()).hexdigest()


def part_key(parts: Path, chunk: int) -> str | None:
    """The digest a finished chunk was computed under, or `None` when the chunk is not finished."""
    counts, lines = parts / f"chunk-{chunk:06d}.safetensors", parts / f"chunk-{chunk:06d}.jsonl"
    if not (counts.is_file() and lines.is_file()):
        return None
    try:
        with safe_open(str(counts), framework="numpy") as handle:
            return (handle.metadata() or {}).get("key")
    except Exception:  # noqa: BLE001 - an unreadable part is computed again
        return None


def join_parts(parts: Path, num_chunks: int, output_file: Path, output_format: str, dataset) -> None:
    """Join the chunks' JSON lines, in order, into `output_file` in `output_format`, one chunk in memory at a time."""
    files = [parts / f"chunk-{c:06d}.jsonl" for c in range(num_chunks)]
    with replaced_atomically(output_file) as tmp:
        if output_format == "jsonl":
            with open(tmp, "wb") as out:
                for file in files:
                    with open(file, "rb") as part:
                        shutil.copyfileobj(part, out)
        elif output_format == "csv":
            with open(tmp, "w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(TABLE_COLUMNS)
                for file in files:
                    for record in map(json.loads, file.read_text(encoding="utf-8").splitlines()):
                        writer.writerow([record["id"], *(json.dumps(record.get(column, []), ensure_ascii=False)
                                                         for column in TABLE_COLUMNS[1:])])
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            id_type = dataset.data.schema.field(ID_COLUMN).type if ID_COLUMN in dataset.column_names else pa.int64()
            entry = pa.struct([("label", pa.string()), ("name", pa.string()), ("score", pa.float64())])
            schema = pa.schema([("id", id_type), ("labels", pa.list_(pa.string())), ("names", pa.list_(pa.string())),
                                ("scores", pa.list_(pa.float64())), ("paths", pa.list_(pa.string())),
                                ("top_k", pa.list_(entry))])
            with pq.ParquetWriter(str(tmp), schema) as writer:
                for file in files:
                    records = list(map(json.loads, file.read_text(encoding="utf-8").splitlines()))
                    for record in records:  # scores in the order of the labels
                        record["scores"] = [record["scores"][label] for label in record["labels"]]
                        record.setdefault("top_k", [])
                    writer.write_table(pa.Table.from_pylist(records, schema=schema))


__all__ = ["PREDICTION_FORMATS", "CorpusResult", "classify_corpus"]
