"""A scorer that counts: it appends the `id` of every row it scores to a log file (one line per row, one write per
batch), so a test sees which rows were computed, in this process, in worker processes or in a killed subprocess.

Run as a script, it scores a saved dataset into a store (the subprocess the kill tests SIGKILL):

    python -m tests.scoring.fakes DATASET STORE LOG [NUM_PROC] [DELAY_S]
"""

import os
import sys
import time

from datasets import List, Value, load_from_disk

from hf_diverse.scorers.base import Scorer


class CountingScorer(Scorer):
    """Adds `n_chars` (int64) and `vec` (3 float32: a pure function of the prompt) and logs the ids it scores.

    Args:
        log (`str`): the log file; each line is `<id> <pid>`.
        delay (`float`): seconds to sleep per batch (so a test can kill it mid-run).
        fail_after (`int`, *optional*): raise after this many rows were scored by this process (a crash).
        exit_after (`int`, *optional*): `os._exit(1)` after this many rows (a worker killed outright).
        scale (`float`): a configuration value that changes the results (and so the store key).
    """

    _seen = 0

    def __init__(self, log: str, delay: float = 0.0, fail_after=None, exit_after=None, scale: float = 1.0):
        self.log = log
        self.delay = delay
        self.fail_after = fail_after
        self.exit_after = exit_after
        self.scale = scale

    # where it fails and how slowly it runs do not change its results
    reuse_ignores = ("device", "batch_size", "delay", "fail_after", "exit_after", "log")

    def input_columns(self, column_names):
        return ["prompt"]

    def output_features(self):
        return {"n_chars": Value("int64"), "vec": List(Value("float32"), length=3)}

    def score_batch(self, batch, indices, device):
        n = len(batch["prompt"])
        if self.fail_after is not None and self._seen + n > self.fail_after:
            raise RuntimeError("simulated crash")
        if self.exit_after is not None and self._seen + n > self.exit_after:
            os._exit(1)
        time.sleep(self.delay)
        with open(self.log, "a") as f:
            f.write("".join(f"{i} {os.getpid()}\n" for i in batch["id"]))
        self._seen += n
        return {
            "n_chars": [len(p) for p in batch["prompt"]],
            "vec": [[self.scale * len(p), float(p.count("a")), float(hash_of(p))] for p in batch["prompt"]],
        }


def hash_of(text: str) -> int:
    return sum(ord(c) for c in text) % 97


def logged(path) -> list[tuple[int, int]]:
    """`(id, pid)` of every row a `CountingScorer` logged (with repeats), in order."""
    if not os.path.exists(path):
        return []
    return [tuple(int(x) for x in line.split()) for line in open(path).read().splitlines() if line]


def logged_ids(path) -> list[int]:
    """The ids a `CountingScorer` logged (with repeats), in order."""
    return [i for i, _ in logged(path)]


def main(argv):
    from hf_diverse.scoring import score
    from tests.scoring.fakes import CountingScorer  # not `__main__.CountingScorer`: the class is part of the key

    dataset, store, log = argv[:3]
    num_proc = int(argv[3]) if len(argv) > 3 and argv[3] != "-" else None
    delay = float(argv[4]) if len(argv) > 4 else 0.05
    ds = load_from_disk(dataset)
    score(ds, CountingScorer(log, delay=delay), checkpoint_dir=store, shard_size=40, batch_size=10, num_proc=num_proc)


if __name__ == "__main__":
    main(sys.argv[1:])
