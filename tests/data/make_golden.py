"""Record the golden picks of every method on the bundled IFBench pool (tests/test_golden.py checks them).

Run once before a change that must not alter any pick, commit the JSON, and re-run only when a change of picks is
intended (say so in the commit):

    HF_HUB_OFFLINE=1 .venv/bin/python tests/data/make_golden.py           # writes tests/data/golden_picks.json
    HF_HUB_OFFLINE=1 .venv/bin/python tests/data/make_golden.py --embed   # also re-embeds the pool (MiniLM)
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from golden_cases import CASES, EMBEDDINGS, SEEDS, golden_pool, run_case  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--embed", action="store_true", help="re-embed the pool with the bundled MiniLM")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.embed or not EMBEDDINGS.exists():
        # imported only once HF_HUB_OFFLINE is set (the Hugging Face libraries read it at import)
        from hf_diverse import EmbeddingScorer
        from hf_diverse.data import load_embedded_default

        pool = load_embedded_default()
        scorer = EmbeddingScorer()
        emb = np.asarray(pool.map(scorer, batched=True, batch_size=512)["embedding"], dtype=np.float32)
        np.save(EMBEDDINGS, emb.astype(np.float16))
    pool = golden_pool()
    out = {}
    for name in CASES:
        for seed in SEEDS:
            out[f"{name}/seed{seed}"] = run_case(pool, name, seed)
            print(name, seed, out[f"{name}/seed{seed}"][:8])
    (HERE / "golden_picks.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
