"""Fits the `implicit` library's ALS on the train split that `als-fit` wrote and scores it
with the same protocol (top 10, training items excluded, binary relevance, nDCG with a log2
discount, averaged over users with test items). Prints one JSON line.

usage: python als_implicit.py DIR FACTORS ITERATIONS REGULARIZATION ALPHA RUNS
"""
import json
import sys
import time

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares


def load(path, shape=None):
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    users = data[:, 0].astype(np.int32)
    items = data[:, 1].astype(np.int32)
    values = data[:, 2].astype(np.float32)
    if shape is None:
        shape = (users.max() + 1, items.max() + 1)
    return sp.csr_matrix((values, (users, items)), shape=shape)


def main():
    folder, factors, iterations, reg, alpha, runs = sys.argv[1:7]
    train_raw = np.loadtxt(f"{folder}/train.csv", delimiter=",", skiprows=1, ndmin=2)
    test_raw = np.loadtxt(f"{folder}/test.csv", delimiter=",", skiprows=1, ndmin=2)
    n_users = int(max(train_raw[:, 0].max(), test_raw[:, 0].max())) + 1
    n_items = int(max(train_raw[:, 1].max(), test_raw[:, 1].max())) + 1
    train = load(f"{folder}/train.csv", (n_users, n_items))
    test = load(f"{folder}/test.csv", (n_users, n_items))
    # implicit uses the matrix values as the confidence c itself (after multiplying them by its
    # alpha), where this project uses c = 1 + alpha * value. Handing implicit 1 + alpha * value
    # with its alpha at 1 gives both libraries exactly the same confidences.
    confidence = train.copy()
    confidence.data = 1.0 + float(alpha) * confidence.data
    seconds = []
    model = None
    for _ in range(int(runs)):
        model = AlternatingLeastSquares(
            factors=int(factors),
            iterations=int(iterations),
            regularization=float(reg),
            alpha=1.0,
            use_cg=True,
            calculate_training_loss=False,
            random_state=42,
        )
        start = time.perf_counter()
        model.fit(confidence, show_progress=False)
        seconds.append(time.perf_counter() - start)
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    ids, _ = model.recommend(users, confidence[users], N=10, filter_already_liked_items=True)
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ndcg = recall = 0.0
    for row, u in enumerate(users):
        relevant = set(test.indices[test.indptr[u] : test.indptr[u + 1]])
        hits = np.array([i in relevant for i in ids[row]], dtype=float)
        idcg = discounts[: min(10, len(relevant))].sum()
        ndcg += (hits * discounts).sum() / idcg
        recall += hits.sum() / len(relevant)
    import implicit

    print(json.dumps({
        "library": f"implicit {implicit.__version__}",
        "fit_seconds": seconds,
        "ndcg_at_10": ndcg / len(users),
        "recall_at_10": recall / len(users),
    }))


if __name__ == "__main__":
    main()
