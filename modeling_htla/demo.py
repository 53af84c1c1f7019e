"""A Gradio demo of an HTLA checkpoint: for a typed text, the predicted label paths, the scores per level as bars and
every label of the tree with its score; a threshold slider per level (starting at the model's decision thresholds,
learned on validation) and the model card's examples.

    python -m modeling_htla.demo outputs/htla-icd10cm          # then open http://127.0.0.1:7860

It runs on a checkpoint folder (offline) or a Hub model id, and it is the `app.py` of the Space that
`python -m modeling_htla.space` writes. So it imports nothing from this package: the model, its pipelines and its
taxonomy come from the checkpoint's own code (`handler.py` and the flat modules, through `trust_remote_code`).
"""

from __future__ import annotations

import argparse
import html
import os

import gradio as gr
from huggingface_hub import ModelCard
from transformers.dynamic_module_utils import get_class_from_dynamic_module

DEFAULT_MODEL = None  # the Space writer puts the Hub model id here
TOP_CLASSES = 5  # bars shown per level


class HTLADemo:
    """The checkpoint's Inference Endpoints handler, its taxonomy, and the HTML views of one prediction."""

    def __init__(self, model: str):
        self.handler = get_class_from_dynamic_module("handler.EndpointHandler", model)(model)
        self.display = get_class_from_dynamic_module("decoding.display_label", model)
        self.taxonomy = self.handler.model.config.get_taxonomy()
        self.path_ids = {self.taxonomy.path(j): j for j in range(len(self.taxonomy))}

    def predict(self, text: str, *thresholds: float) -> tuple:
        """(paths HTML, one {label: score} per level, tree HTML) for one text, at one threshold per level.

        It receives the raw values sent to the app (`preprocess=False`), so a bad one, which only an API call can send
        (no text, a number, a threshold outside [0, 1]), is shown as a one-line `gr.Error`, never a traceback."""
        if not isinstance(text, str):
            raise gr.Error(f"text: expected a string, got {'None' if text is None else type(text).__name__}",
                           print_exception=False)
        for threshold in thresholds:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
                raise gr.Error(f"threshold: expected a number between 0 and 1, got {threshold!r}", print_exception=False)
        tax = self.taxonomy
        labels = self.handler({"inputs": text})  # a text longer than the encoder's positions is cut to them
        scores = [0.0] * len(tax)
        for item in labels:
            scores[tax.label2id[item["label"]]] = item["score"]
        paths = self.handler({"inputs": text, "parameters": {"output": "paths", "threshold": list(thresholds)}})
        ends = [self.path_ids[item["label"]] for item in paths]
        chosen = {i for end in ends for i in tax.ancestors(end)}
        levels = [{self.display(tax, j): scores[j] for j in range(len(tax)) if tax.depths[j] == depth}
                  for depth in range(1, tax.num_levels + 1)]
        return self._paths_html(ends, scores), *levels, self._tree_html(scores, chosen)

    def _paths_html(self, ends: list[int], scores: list[float]) -> str:
        if not ends:
            return "<p>No top-level label scores above its threshold.</p>"
        rows = "".join(
            f'<li><span class="htla-path">{html.escape(" > ".join(self.display(self.taxonomy, i) for i in self.taxonomy.ancestors(j)))}'
            f'</span> <b class="htla-score">{scores[j]:.3f}</b></li>' for j in ends)
        return f'<ol class="htla-paths">{rows}</ol>'

    def _tree_html(self, scores: list[float], chosen: set[int]) -> str:
        """Nested <details>, siblings by score; the predicted labels are bold and their branches open."""
        tax = self.taxonomy

        def node(j: int) -> str:
            name = html.escape(self.display(tax, j))
            row = f"<b>{name}</b>" if j in chosen else name
            row = f'<meter min="0" max="1" value="{scores[j]:.4f}"></meter> {scores[j]:.3f} {row}'
            if not tax.children[j]:
                return f"<div>{row}</div>"
            children = "".join(node(c) for c in sorted(tax.children[j], key=lambda c: -scores[c]))
            return f'<details{" open" if j in chosen else ""}><summary>{row}</summary>' \
                   f'<div style="margin-left:1.5em">{children}</div></details>'

        return "".join(node(j) for j in sorted(tax.roots, key=lambda r: -scores[r]))


def card_examples(model: str) -> list[str]:
    """The texts of the model card's `widget:` entries (none when the card is missing or has none)."""
    card = os.path.join(model, "README.md") if os.path.isdir(model) else model
    try:
        widget = ModelCard.load(card).data.get("widget") or []
    except Exception:  # no card, or the Hub is not reachable: the demo works without examples
        return []
    return [entry["text"] for entry in widget if isinstance(entry, dict) and entry.get("text")]


def build_demo(model: str, threshold: float | None = None) -> gr.Blocks:
    """The Gradio app for `model` (checkpoint folder or Hub id); the sliders start at `threshold`, or at the model's
    decision thresholds per level (learned on validation; 0.5 without them)."""
    demo_model = HTLADemo(model)
    tax = demo_model.taxonomy
    config = demo_model.handler.model.config
    starts = [threshold] * tax.num_levels if threshold is not None else \
        [config.label_thresholds()[tax.depths.index(depth)] for depth in range(1, tax.num_levels + 1)]
    title = os.path.basename(os.path.normpath(model))
    start_note = "the values given" if threshold is not None else \
        "the model's, learned on validation" if config.decision_thresholds else "0.5"
    with gr.Blocks(title=f"{title} · HTLA") as demo:
        gr.Markdown(f"# {title}\nHierarchical text classification with HTLA: {len(tax)} labels on "
                    f"{tax.num_levels} levels. A label is kept when its score is above its level's threshold and its "
                    "parent is kept too, so the predicted paths always follow the tree. The thresholds start at "
                    f"{start_note}.")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", lines=5, elem_id="htla-text")
                sliders = [gr.Slider(0.0, 1.0, value=start, step=0.01, label=f"Threshold, level {depth}",
                                     elem_id=f"htla-threshold-{depth}") for depth, start in enumerate(starts, start=1)]
                button = gr.Button("Classify", variant="primary", elem_id="htla-classify")
                examples = card_examples(model)
                if examples:
                    gr.Examples(examples, inputs=text, label="Examples from the model card")
            with gr.Column():
                gr.Markdown("### Predicted paths")
                paths = gr.HTML(elem_id="htla-paths")
                levels = [gr.Label(label=f"Level {depth}", num_top_classes=TOP_CLASSES, show_heading=False,
                                   elem_id=f"htla-level-{depth}") for depth in range(1, tax.num_levels + 1)]
        with gr.Accordion(f"Every label of the tree ({len(tax)})", open=False, elem_id="htla-all"):
            tree = gr.HTML(elem_id="htla-tree")
        # One API endpoint, /classify, for the button, Enter in the text box and the sliders.
        gr.on([button.click, text.submit, *(slider.release for slider in sliders)], demo_model.predict,
              [text, *sliders], [paths, *levels, tree], api_name="classify", preprocess=False)
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Gradio demo of an HTLA checkpoint.")
    parser.add_argument("model", nargs="?" if DEFAULT_MODEL else None, default=DEFAULT_MODEL,
                        help="checkpoint folder or Hub model id")
    parser.add_argument("--threshold", type=float, default=None,
                        help="the threshold sliders' start value (default: the model's learned thresholds)")
    parser.add_argument("--host", default=None, help="server address (default: Gradio's, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="server port (default: Gradio's, 7860)")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        parser.error(f"--threshold must be between 0 and 1, got {args.threshold}")
    if os.path.isdir(args.model) and not os.path.isfile(os.path.join(args.model, "handler.py")):
        parser.error(f"{args.model}: no handler.py; not an HTLA checkpoint, or saved by an older htla "
                     "(load it with HTLAModel.from_pretrained and save it again)")
    build_demo(args.model, args.threshold).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
