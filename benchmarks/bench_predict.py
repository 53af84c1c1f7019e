"""Corpus prediction (`run_htc.py --do_predict`, issue 29): documents per second and peak RSS.

For each taxonomy (named as in `shapes.py`: `icd10:2` is the default run's 307 labels, `icd10` the full ICD-10-CM tree
of 98,493), an untrained HTLA on the packaged encoder is saved once as a checkpoint (speed and memory do not depend
on the weights' values); a folder given instead of a name (such as `outputs/htla-icd10cm`, the default run's trained
checkpoint) is used as it is. 20 Newsgroups test posts, repeated to each size, are classified at up to
`--max_seq_length` tokens by one process or two (`accelerate launch --use_cpu`), with length sorting on and off, by
the PyTorch checkpoint and, with `--models`, by its ONNX exports (`python -m modeling_htla.onnx`, fp32 or int8).
Documents per second are the run's `predict_samples_per_second` (the classification, not the start-up); peak RSS is
the largest sum over the run's processes, sampled every 0.1 s, beside its anonymous part (RSS less file-backed
pages: the memory-mapped Arrow files of the input are page cache the kernel can take back, and grow with the file). `--pipeline` adds, per taxonomy and size, the
`hierarchical-text-classification` pipeline's documents per second on the same texts (one call on the list, same
batch size and token limit, in a fresh process), the way the Python API classifies a list.

Results go to `benchmarks/results/<--output>.json` with the machine's load read before anything runs
(`common.machine_load`): `idle` is false when the 1-minute load average was above 0.5, a warning then says the
figures are not a result. Each case also records the load at its start, which includes the benchmark's own earlier
cases.

    python benchmarks/bench_predict.py [--sizes 10000 100000] [--shapes icd10:2 icd10] [--processes 1 2]
        [--sort on off] [--models pytorch onnx-int8] [--pipeline] [--max_seq_length 128] [--batch 64] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from common import machine_load, save_result

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "20newsgroups" / "test.jsonl"


def save_checkpoint(spec: str, folder: Path) -> None:
    """An untrained HTLA over the taxonomy `spec`, with the packaged encoder's tokenizer (narrow graph when wide). Its
    biases are set to a rare label's prior (`init_bias_from_priors`) so that, as a trained model, it decides a few
    labels per document: with zero biases about half of the labels pass 0.5, and the run would measure writing
    records of tens of thousands of labels rather than classifying."""
    from transformers import AutoTokenizer

    from modeling_htla import HTLAModel, resolve_encoder
    from shapes import build_taxonomy

    taxonomy = build_taxonomy(spec)
    wide = len(taxonomy) > 4096
    model = HTLAModel.from_encoder(resolve_encoder(None), taxonomy=taxonomy, graph_hidden_size=64 if wide else None,
                                   graph_num_heads=4 if wide else None)
    model.init_bias_from_priors([1 / len(taxonomy)] * len(taxonomy))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_encoder(None)).save_pretrained(folder)


def export(checkpoint: Path, folder: Path, model: str) -> Path:
    """The checkpoint's ONNX export for `model` (`onnx-fp32` or `onnx-int8`), made once."""
    from modeling_htla.onnx import export_onnx

    if not folder.is_dir():
        export_onnx(checkpoint, folder, quantize="int8" if model == "onnx-int8" else None)
    return folder


PIPELINE_RUN = """
import json, sys, time
from transformers import pipeline
model, corpus, batch, max_length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = [json.loads(line)["text"] for line in open(corpus, encoding="utf-8")]
pipe = pipeline("hierarchical-text-classification", model=model, trust_remote_code=True, device="cpu")
start = time.perf_counter()
answers = pipe(texts, batch_size=batch, max_length=max_length)
seconds = time.perf_counter() - start
assert len(answers) == len(texts)
print(json.dumps({"seconds": seconds, "documents": len(texts)}))
"""


def run_pipeline(checkpoint: Path, corpus: Path, args) -> dict:
    """The pipeline's documents per second on the corpus, in a fresh process (`--threads`, default every core)."""
    threads = args.threads or os.cpu_count() or 1
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    load1, uptime = load()
    result = subprocess.run([sys.executable, "-c", PIPELINE_RUN, str(checkpoint), str(corpus), str(args.batch),
                             str(args.max_seq_length)], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench_predict.py: error: the pipeline run failed:\n{result.stderr[-2000:]}")
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    return {"docs_per_s": round(timing["documents"] / timing["seconds"], 2), "seconds": round(timing["seconds"], 2),
            "threads_per_process": threads, "load_1min": load1, "uptime": uptime}


def write_corpus(size: int, path: Path) -> None:
    """`size` 20 Newsgroups test posts in an order shuffled with seed 0 (the file is sorted by newsgroup), repeated
    when fewer, with unique ids."""
    texts = [json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()]
    random.Random(0).shuffle(texts)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(size):
            out.write(json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n")


def load() -> tuple[float, str]:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return os.getloadavg()[0], uptime


def run_case(checkpoint: Path, corpus: Path, out: Path, processes: int, sort: bool, args) -> dict:
    """One prediction run in fresh processes: its documents per second and peak RSS (all its processes)."""
    flags = ["--model_name_or_path", str(checkpoint), "--test_file", str(corpus), "--do_predict", "--output_dir",
             str(out), "--max_seq_length", str(args.max_seq_length), "--per_device_eval_batch_size", str(args.batch),
             "--predict_sort_by_length", str(sort).lower(), "--report_to", "none", "--use_cpu"]
    threads = args.threads or max(1, (os.cpu_count() or 1) // processes)
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS=str(threads),
               PYTHONPATH=str(ROOT))
    load1, uptime = load()
    out.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"  # a file, not a pipe: a pipe read only at the end fills and blocks the run
    with open(log, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(launcher + [str(ROOT / "run_htc.py"), *flags], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        parent, peak, peak_anon = psutil.Process(process.pid), 0, 0
        while process.poll() is None:
            try:
                tree = [p.memory_info() for p in [parent, *parent.children(recursive=True)] if p.is_running()]
                peak = max(peak, sum(info.rss for info in tree))
                peak_anon = max(peak_anon, sum(info.rss - info.shared for info in tree))
            except psutil.Error:
                pass
            time.sleep(0.1)
    if process.returncode != 0:
        raise SystemExit(f"bench_predict.py: error: the run failed:\n{log.read_text(encoding='utf-8')[-2000:]}")
    results = json.loads((out / "predict_results.json").read_text())
    return {"docs_per_s": round(results["predict_samples_per_second"], 2), "peak_rss_mb": round(peak / 2**20, 1),
            "peak_anonymous_mb": round(peak_anon / 2**20, 1),
            "predict_runtime_s": results["predict_runtime"], "threads_per_process": threads,
            "load_1min": load1, "uptime": uptime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--shapes", nargs="+", default=["icd10:2", "icd10"],
                        help="taxonomies of shapes.py (an untrained model is built) or checkpoint folders")
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--sort", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--models", nargs="+", choices=["pytorch", "onnx-fp32", "onnx-int8"], default=["pytorch"])
    parser.add_argument("--pipeline", action="store_true", help="also time the hierarchical-text-classification pipeline")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0,
                        help="threads per process (default 0: the cores shared among the processes)")
    parser.add_argument("--output", default="predict", help="Result name in benchmarks/results/ (default predict).")
    args = parser.parse_args()
    machine = machine_load()

    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            write_corpus(size, tmp / f"docs-{size}.jsonl")
        for spec in args.shapes:
            checkpoint = Path(spec)
            if not checkpoint.is_dir():
                checkpoint = tmp / f"model-{spec.replace(':', '-')}"
                save_checkpoint(spec, checkpoint)
            for model in args.models:
                folder = checkpoint if model == "pytorch" else export(checkpoint, tmp / f"{checkpoint.name}-{model}", model)
                for size in args.sizes:
                    for processes in args.processes:
                        for sort in args.sort:
                            out = tmp / f"out-{len(cases)}"
                            case = {"shape": spec, "model": model, "documents": size, "processes": processes,
                                    "sort_by_length": sort,
                                    **run_case(folder, tmp / f"docs-{size}.jsonl", out, processes, sort == "on", args)}
                            print(json.dumps(case), flush=True)
                            cases.append(case)
            if args.pipeline:
                for size in args.sizes:
                    case = {"shape": spec, "model": "pipeline", "documents": size, "processes": 1,
                            **run_pipeline(checkpoint, tmp / f"docs-{size}.jsonl", args)}
                    print(json.dumps(case), flush=True)
                    cases.append(case)
    idle = machine["idle"]
    path = save_result(args.output, {**machine, "max_seq_length": args.max_seq_length, "batch": args.batch,
                                     "data": "20newsgroups test posts, repeated", "cases": cases})
    print(f"idle: {str(idle).lower()} (1-minute load {machine['load_average']['1min']:.2f} before the run); saved {path}")


if __name__ == "__main__":
    main()
