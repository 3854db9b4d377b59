"""EASE (Steck 2019) with numpy on the train split that `als-fit` wrote (`FIT=ease`), scored
with the same protocol (top 10, training items excluded, binary relevance, nDCG with a log2
discount, averaged over users with test items). Prints one JSON line.

usage: python ease_numpy.py DIR LAMBDA RUNS
"""
import json
import sys
import time

import numpy as np
import scipy.sparse as sp


def main():
    folder, lam, runs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    train = np.loadtxt(f"{folder}/train.csv", delimiter=",", skiprows=1, ndmin=2)
    test = np.loadtxt(f"{folder}/test.csv", delimiter=",", skiprows=1, ndmin=2)
    n_users = int(max(train[:, 0].max(), test[:, 0].max())) + 1
    n_items = int(max(train[:, 1].max(), test[:, 1].max())) + 1
    x = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float64), (train[:, 0].astype(int), train[:, 1].astype(int))),
        shape=(n_users, n_items),
    )
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        g = (x.T @ x).toarray()
        g[np.diag_indices(n_items)] += lam
        p = np.linalg.inv(g)
        b = p / (-np.diag(p))
        b[np.diag_indices(n_items)] = 0.0
        seconds.append(time.perf_counter() - start)
    scores = np.asarray(x @ b)
    scores[x.nonzero()] = -np.inf
    held = {}
    for u, i in test[:, :2].astype(int):
        held.setdefault(u, set()).add(i)
    discount = 1.0 / np.log2(np.arange(2, 12))
    total = 0.0
    for u, items in held.items():
        top = np.argpartition(-scores[u], 10)[:10]
        top = top[np.argsort(-scores[u][top])]
        dcg = sum(discount[r] for r, i in enumerate(top) if i in items)
        ideal = discount[: min(len(items), 10)].sum()
        total += dcg / ideal
    print(json.dumps({
        "library": "numpy",
        "model": "ease",
        "items": n_items,
        "lambda": lam,
        "fit_seconds": seconds,
        "ndcg_at_10": total / len(held),
    }))


if __name__ == "__main__":
    main()
