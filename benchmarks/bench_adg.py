"""Examples/s of `AnswerDivergenceScorer` vs a re-creation of the reference ADG flow, same model and hardware.

The reference flow (WisdomShell/ADG, re-written here from its description, not copied):
  1. generation: one instruction per `generate` call with `num_return_sequences=K`, Alpaca template, prompt truncated
     to 80 tokens, temperature 1.4, top_p 0.9;
  2. scoring: each of the K texts `instruction + " " + answer` in its own forward pass of the causal LM with
     `output_hidden_states=True`, token weights by decoding every token, weighted mean of layers -4..-2, then the
     centred-Gram eigenvalues.
hf_diverse's scorer: batched per-row-seeded sampling across instructions x samples, one batched teacher-forced pass.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_adg.py --n 32 --k 5 --max-new-tokens 64

The two flows alternate in chunks of `--chunk` prompts (the CPU is shared; alternating keeps load drift out of the
ratio). The scorer scores a whole chunk per call (`batch_size` sequences per decoding batch).
"""

import argparse
import json
import os
import platform
import re
import time

import numpy as np
import torch

from hf_diverse.data import load_embedded_default
from hf_diverse.models import load_causal_lm, torch_dtype_for
from hf_diverse.scorers.adg import AnswerDivergenceScorer, combined_score
from hf_diverse.utils.device import resolve_device

ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{}\n\n### Response:"
)


def _weights(ids, tok):
    w = np.ones(len(ids), dtype=np.float32)
    for i, t in enumerate(ids):
        s = tok.decode([int(t)]).strip()
        if re.search(r"[\d%℃°]", s):
            w[i] *= 1.3
        if not s or re.fullmatch(r"[\s,.;:!?()\[\]{}\"'`~\-_/\\]+", s):
            w[i] = 0.0
    return w


@torch.no_grad()
def _vector(text, tok, model, device):
    enc = tok(text, return_tensors="pt", add_special_tokens=False, truncation=True, max_length=1024).to(device)
    hs = model(**enc, output_hidden_states=True).hidden_states
    h = torch.stack([hs[len(hs) + i][0] for i in (-4, -3, -2)]).mean(0).float()
    w = torch.tensor(_weights(enc["input_ids"][0].tolist(), tok), device=device)[:, None]
    v = (h * w).sum(0) / w.sum().clamp(min=1e-8)
    return (v / v.norm().clamp(min=1e-12)).cpu().numpy()


def _metrics(vectors):
    v = np.stack([x / (np.linalg.norm(x) + 1e-12) for x in vectors]).astype(np.float64)
    k = len(v)
    h = np.eye(k) - np.ones((k, k)) / k
    s = v @ v.T
    lam = np.clip(np.sort(np.linalg.eigvalsh(h @ s @ h))[::-1], 0, None)
    tr = lam.sum()
    return (0.0, 0.0) if tr < 1e-12 else (tr / k, 1 - lam[0] / tr)


def reference_flow(instructions, model, tok, device, k, max_new_tokens):
    tok.padding_side = "left"
    scores = []
    for instr in instructions:  # one instruction per generate call
        enc = tok([ALPACA.format(instr)], return_tensors="pt", padding=True, truncation=True, max_length=80).to(device)
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            num_return_sequences=k,
            do_sample=True,
            temperature=1.4,
            top_p=0.9,
            pad_token_id=tok.eos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        answers = [tok.decode(o[enc["input_ids"].shape[1] :], skip_special_tokens=True).strip() for o in out]
        vecs = [_vector(instr + " " + a, tok, model, device) for a in answers]  # one text per forward pass
        d, i = _metrics(vecs)
        scores.append(float(combined_score(d, i)))
    return scores


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=32, help="IFBench prompts (default 32)")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--model", default=None, help="causal LM (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--batch-size", type=int, default=64, help="scorer: sequences per generate call")
    p.add_argument("--chunk", type=int, default=16, help="prompts per alternating chunk (default 16)")
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()

    device = resolve_device(None)
    pool = load_embedded_default().select(range(args.n))
    results = {
        "n": args.n,
        "k": args.k,
        "max_new_tokens": args.max_new_tokens,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }

    scorer = AnswerDivergenceScorer(
        model=args.model, num_samples=args.k, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
    )
    scorer.load()
    scorer(pool[:1])  # warm-up (token-weight table, kernels)
    if not args.skip_reference:
        model, tok, _ = load_causal_lm(args.model, device=device, dtype=torch_dtype_for(device))
        torch.manual_seed(0)
        reference_flow(pool["prompt"][:1], model, tok, device, args.k, args.max_new_tokens)  # warm-up
    # the machine is shared and its load drifts: alternate the two flows chunk by chunk and sum the times
    ours_s, ref_s, ours_cpu, ref_cpu, ours, ref = 0.0, 0.0, 0.0, 0.0, [], []
    for start in range(0, args.n, args.chunk):
        chunk = pool.select(range(start, min(args.n, start + args.chunk)))
        t0, c0 = time.perf_counter(), time.process_time()
        ours += scorer(chunk[:])["adg_score"]
        ours_s, ours_cpu = ours_s + time.perf_counter() - t0, ours_cpu + time.process_time() - c0
        if not args.skip_reference:
            t0, c0 = time.perf_counter(), time.process_time()
            ref += reference_flow(chunk["prompt"], model, tok, device, args.k, args.max_new_tokens)
            ref_s, ref_cpu = ref_s + time.perf_counter() - t0, ref_cpu + time.process_time() - c0
    results["hf_diverse_s"] = round(ours_s, 2)
    results["hf_diverse_cpu_s"] = round(ours_cpu, 2)
    results["hf_diverse_ex_per_s"] = round(args.n / ours_s, 3)
    results["hf_diverse_mean_score"] = round(float(np.mean(ours)), 4)
    if not args.skip_reference:
        results["reference_s"] = round(ref_s, 2)
        results["reference_cpu_s"] = round(ref_cpu, 2)
        results["reference_ex_per_s"] = round(args.n / ref_s, 3)
        results["reference_mean_score"] = round(float(np.mean(ref)), 4)
        results["speedup"] = round(results["hf_diverse_ex_per_s"] / results["reference_ex_per_s"], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
