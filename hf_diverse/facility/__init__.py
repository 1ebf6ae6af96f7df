"""The facility-location engine: greedy maximisation of f(j | A) = w * d(j | A) + b_j over unit vectors.

It knows nothing of QDIT, quality or alpha: a method passes the diversity weight w and a per-row bonus b (QDIT:
`hf_diverse.selection.qdit_scaling.score_terms`, e.g. w = (1 - alpha) / N, b = alpha * q~ / k with scaling="mean").
One module per strategy family:

- `objective`: d(A), the result type, the score checks and the lazy pick shared by the loops;
- `memory`: the one memory check (does the N x N float32 matrix fit) and the `auto` rule;
- `stored`: exact greedy over the stored similarity matrix (`dense`, `lazy`, `incremental`) or recomputed rows;
- `kernels`: the compiled (numba) CPU loops of the stored-matrix strategies;
- `blocked`: exact greedy without the matrix (the largest similarities of each row, the rest recomputed);
- `toplists`: the blocked mode's pass of products (each row's largest similarities, the first pick's guess);
- `knn`: the kNN similarity graph (exact, torch IVF, FAISS) and its on-disk cache;
- `graph`: greedy (`sparse`) and stochastic greedy with gains on the kNN graph, the cover on dense similarities;
- `graph_kernels`: the compiled (numba) CPU loop of `sparse` greedy on the graph;
- `greedi`: GreeDi over `torch.distributed` ranks, with any of the strategies above on each shard.
"""

from .graph import SPARSE_STRATEGIES, knn_greedy, sparse_facility_location_greedy
from .greedi import LOCAL_STRATEGIES, GreediResult, dist_info, greedi, rank_device, shard_rows
from .knn import KNN_METHODS, KnnGraph, build_knn_graph
from .memory import check_dense_fits, choose_strategy, dense_matrix_bytes
from .objective import GreedyResult, facility_location_objective
from .stored import STRATEGIES, build_similarity, facility_location_greedy

__all__ = [
    "KNN_METHODS",
    "LOCAL_STRATEGIES",
    "SPARSE_STRATEGIES",
    "STRATEGIES",
    "GreediResult",
    "GreedyResult",
    "KnnGraph",
    "build_knn_graph",
    "build_similarity",
    "check_dense_fits",
    "choose_strategy",
    "dense_matrix_bytes",
    "dist_info",
    "facility_location_greedy",
    "facility_location_objective",
    "greedi",
    "knn_greedy",
    "rank_device",
    "shard_rows",
    "sparse_facility_location_greedy",
]
