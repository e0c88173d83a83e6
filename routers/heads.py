"""Training-side: small multi-output logistic/MLP heads on embeddings (torch, imported lazily).

``fit_heads`` fits ``sigmoid(MLP(x))`` to soft targets in [0, 1] with a NaN mask (missing
outcomes are ignored), AdamW weight decay, dropout, and early stopping on a held-out group
split. Returns numpy layers ``[(W, b), ...]`` that ``onnx_graphs.mlp_quality_graph`` exports
and that :func:`predict_heads` evaluates (the training-time reference for parity tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Layers = list[tuple[np.ndarray, np.ndarray]]


def val_split(groups: Sequence[str], frac: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices by group (whole groups to validation), for early stopping."""
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed + 1)
    n_val = max(1, int(round(frac * len(uniq))))
    val = set(rng.permutation(uniq)[:n_val].tolist())
    is_val = np.array([g in val for g in groups])
    if is_val.all() or not is_val.any():
        is_val = rng.random(len(groups)) < frac
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def fit_heads(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    *,
    hidden: int = 0,
    weight_decay: float = 1e-3,
    dropout: float = 0.1,
    lr: float = 3e-3,
    max_epochs: int = 300,
    patience: int = 30,
    batch_size: int = 512,
    seed: int = 0,
    weights: np.ndarray | None = None,
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> tuple[Layers, dict]:
    """Fit heads; returns (layers, info) where info has the best epoch and validation loss.

    ``on_epoch(epoch, max_epochs, validation_loss)`` after every epoch (a progress bar).
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    y = np.asarray(y, dtype=np.float32).reshape(len(x), -1)
    mask = np.isfinite(y).astype(np.float32)
    if weights is not None:
        mask = mask * np.asarray(weights, np.float32).reshape(len(x), -1)
    y = np.nan_to_num(y, nan=0.0)
    tr, va = val_split(groups, seed=seed)
    dim, m = x.shape[1], y.shape[1]
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    if hidden:
        layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
    head = nn.Linear(hidden or dim, m)  # created last, as before: the same initial weights for a seed
    net = nn.Sequential(*layers, head)
    with torch.no_grad():  # start at the base rates
        p = np.clip((y * mask).sum(0) / np.maximum(mask.sum(0), 1e-9), 1e-3, 1 - 1e-3)
        head.bias.copy_(torch.tensor(np.log(p / (1 - p)), dtype=torch.float32))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    X, Y, M = (torch.tensor(a) for a in (np.asarray(x, np.float32), y, mask))
    bce = nn.BCEWithLogitsLoss(reduction="none")

    def loss_on(idx: np.ndarray) -> float:
        net.eval()
        with torch.no_grad():
            ii = torch.tensor(idx)
            l = (bce(net(X[ii]), Y[ii]) * M[ii]).sum() / M[ii].sum().clamp_min(1e-9)
        return float(l)

    best, best_state, best_epoch, bad = float("inf"), None, 0, 0
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(max_epochs):
        net.train()
        perm = torch.tensor(tr)[torch.randperm(len(tr), generator=gen)]
        for s in range(0, len(perm), batch_size):
            ii = perm[s : s + batch_size]
            l = (bce(net(X[ii]), Y[ii]) * M[ii]).sum() / M[ii].sum().clamp_min(1e-9)
            opt.zero_grad()
            l.backward()
            opt.step()
        v = loss_on(va)
        if on_epoch is not None:
            on_epoch(epoch + 1, max_epochs, v)
        if v < best - 1e-5:
            best, best_epoch, bad = v, epoch, 0
            best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    assert best_state is not None
    net.load_state_dict(best_state)
    linears = [mod for mod in net if isinstance(mod, nn.Linear)]
    out = [(l.weight.detach().numpy().T.copy(), l.bias.detach().numpy().copy()) for l in linears]
    return out, {"best_epoch": best_epoch, "val_bce": best, "hidden": hidden, "weight_decay": weight_decay}


def fit_logistic(x: np.ndarray, y: np.ndarray, *, C: float = 0.3, max_iter: int = 3000) -> tuple[Layers, dict]:
    """One L2-regularised logistic regression per output column (scikit-learn, lbfgs), fitted to
    soft targets in [0, 1]: each row enters twice, as a positive with weight ``y`` and as a
    negative with weight ``1 - y``, which is exactly the soft-target BCE. NaN targets are
    skipped. ``C`` is scikit-learn's inverse regularisation strength (no early stopping, so
    the fit is deterministic). Returns ``([(W, b)], info)`` like :func:`fit_heads`.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(len(x), -1)
    w_out = np.zeros((x.shape[1], y.shape[1]), np.float32)
    b_out = np.zeros(y.shape[1], np.float32)
    for j in range(y.shape[1]):
        ok = np.isfinite(y[:, j])
        yj = np.clip(y[ok, j], 0.0, 1.0)
        if not ok.any() or yj.min() == yj.max():  # constant column: a bias-only head
            p = float(np.clip(yj.mean() if ok.any() else 0.5, 1e-3, 1 - 1e-3))
            b_out[j] = np.log(p / (1 - p))
            continue
        n = int(ok.sum())
        xx = np.concatenate([x[ok], x[ok]])
        lab = np.concatenate([np.ones(n), np.zeros(n)])
        m = LogisticRegression(C=C, max_iter=max_iter).fit(xx, lab, sample_weight=np.concatenate([yj, 1.0 - yj]))
        w_out[:, j], b_out[j] = m.coef_[0], m.intercept_[0]
    return [(w_out, b_out)], {"kind": "logistic", "C": C}


def predict_logits(layers: Layers, x: np.ndarray) -> np.ndarray:
    h = np.asarray(x, np.float32)
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return h


def predict_heads(layers: Layers, x: np.ndarray) -> np.ndarray:
    """Training-time reference: ``sigmoid(MLP(x))`` in numpy (float32)."""
    return (1.0 / (1.0 + np.exp(-predict_logits(layers, x)))).astype(np.float32)
