"""Label probes of an embedding: k-nearest-neighbour and linear (logistic) accuracy.

Used to check that SPEC-align keeps what an embedding already knew. Arrays in, a float out;
deterministic on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from speclens.spec.validation import check_int, check_matrix


def _check(emb_train, labels_train, emb_test, labels_test):
    emb_train = check_matrix(emb_train, "emb_train").astype(np.float64)
    emb_test = check_matrix(emb_test, "emb_test").astype(np.float64)
    if emb_train.shape[1] != emb_test.shape[1]:
        raise ValueError(
            f"emb_train has {emb_train.shape[1]} features but emb_test has {emb_test.shape[1]}; "
            f"probe one embedding at a time."
        )
    labels_train, labels_test = np.asarray(labels_train), np.asarray(labels_test)
    for emb, lab, name in (
        (emb_train, labels_train, "labels_train"),
        (emb_test, labels_test, "labels_test"),
    ):
        if lab.shape != (emb.shape[0],):
            raise ValueError(
                f"{name} must have one label per row ({emb.shape[0]}), got {lab.shape}."
            )
    classes, codes = np.unique(np.concatenate([labels_train, labels_test]), return_inverse=True)
    n = labels_train.shape[0]
    return emb_train, codes[:n], emb_test, codes[n:], len(classes)


def knn_accuracy(
    emb_train,
    labels_train,
    emb_test,
    labels_test,
    k: int = 10,
    metric: str = "euclidean",
    chunk_rows: int = 2048,
) -> float:
    """Accuracy of a k-nearest-neighbour majority vote (Euclidean or cosine distance).

    Ties between labels with equal votes go to the label whose neighbours rank closer.
    """
    emb_train, y_train, emb_test, y_test, n_classes = _check(
        emb_train, labels_train, emb_test, labels_test
    )
    k = min(check_int(k, "k"), emb_train.shape[0])
    if metric == "cosine":
        emb_train = emb_train / np.maximum(np.linalg.norm(emb_train, axis=1, keepdims=True), 1e-300)
        emb_test = emb_test / np.maximum(np.linalg.norm(emb_test, axis=1, keepdims=True), 1e-300)
    elif metric != "euclidean":
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}.")
    sq_train = np.einsum("ij,ij->i", emb_train, emb_train)
    # rank r of k neighbours adds (k - r) / (k (k + 1)) < 1/2 in total: breaks ties only
    rank_weight = (k - np.arange(k)) / (k * (k + 1.0))
    correct = 0
    for start in range(0, emb_test.shape[0], chunk_rows):
        q = emb_test[start : start + chunk_rows]
        d2 = sq_train[None, :] - 2.0 * (q @ emb_train.T)
        nn = np.argsort(d2, axis=1, kind="stable")[:, :k]
        votes = np.zeros((q.shape[0], n_classes))
        rows = np.repeat(np.arange(q.shape[0]), k)
        np.add.at(votes, (rows, y_train[nn].ravel()), 1.0 + np.tile(rank_weight, q.shape[0]))
        correct += int((votes.argmax(axis=1) == y_test[start : start + chunk_rows]).sum())
    return correct / emb_test.shape[0]


def linear_probe_accuracy(
    emb_train, labels_train, emb_test, labels_test, l2: float = 1e-3, max_iter: int = 200
) -> float:
    """Accuracy of multinomial logistic regression (L-BFGS, L2 penalty ``l2``) on standardised
    features (mean and scale from the training rows)."""
    emb_train, y_train, emb_test, y_test, n_classes = _check(
        emb_train, labels_train, emb_test, labels_test
    )
    mean, scale = emb_train.mean(axis=0), emb_train.std(axis=0)
    scale[scale == 0] = 1.0
    a = torch.from_numpy((emb_train - mean) / scale)
    t = torch.from_numpy((emb_test - mean) / scale)
    target = torch.from_numpy(y_train)
    w = torch.zeros(a.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(a @ w + bias, target) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (t @ w + bias).argmax(dim=1).numpy()
    return float((pred == y_test).mean())
