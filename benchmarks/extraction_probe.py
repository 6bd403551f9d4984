"""Address extraction by a real pretrained decoder (SmolLM2-135M-Instruct, offline GGUF) on DecodingTrust's
Enron prompts and on AESLC e-mail contexts: the privacy plugin's attack outside the pipeline, with timings.

    W2SBENCH_DATA_DIR=../shared/data python benchmarks/extraction_probe.py [--model smollm2-135m] [--n 100]

Prints exact-match rates (never an address) and seconds per prompt.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from w2sbench.interfaces import DataContext
    from w2sbench.language_model import causal_lm
    from w2sbench.models import fetch_model, load_backbone, resolve_model
    from w2sbench.plugin_manager import get_plugins
    from w2sbench_plugins.privacy import load_enron
    from w2sbench_plugins.privacy._extraction import context_prompts, exact_match_rate, generate, load_name_prompts, name_prompts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    args = parser.parse_args()
    data_dir = Path(os.environ.get("W2SBENCH_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ctx = DataContext(data_dir, data_dir)
    spec = resolve_model(args.model, get_plugins())
    folder = fetch_model(spec)
    tokenizer, _ = load_backbone(spec, folder)
    model = causal_lm(spec, folder)
    names, _ = load_name_prompts(ctx, [5])
    splits, _ = load_enron(ctx)
    rng = np.random.default_rng(0)
    train = splits["train"]
    prompt_sets = {
        "context (AESLC train e-mails)": [p[: args.n] for p in context_prompts([train.texts[i] for i in rng.permutation(len(train))], 200)],
        "zero-shot (template a)": name_prompts(names, 0, "a", args.n),
        "5-shot (template a)": name_prompts(names, 5, "a", args.n),
        "zero-shot (template d)": name_prompts(names, 0, "d", args.n),
    }
    for label, (prompts, targets) in prompt_sets.items():
        start = time.perf_counter()
        outputs = generate(model, tokenizer, prompts, args.max_new_tokens)
        seconds = time.perf_counter() - start
        emitted = np.mean([("@" in o) for o in outputs])
        print(f"{label:32s} exact match {exact_match_rate(outputs, targets):.3f}  any address {emitted:.2f}  "
              f"n={len(prompts)}  {seconds / max(1, len(prompts)):.2f} s/prompt")


if __name__ == "__main__":
    main()
