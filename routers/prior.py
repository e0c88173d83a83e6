"""Universal prior (kind ``prior``): one IRT-style router for every model in every data set.

P(model m does well on prompt x) is a multidimensional item-response model::

    quality_m(x) = sigmoid(theta_m . a(x) + b_m + e(x))

- ``a(x)`` (``traits``, d dims) and ``e(x)`` (``easiness``) are the **shared prompt
  representation**: a small network on the prompt embedding, the same for every model;
- ``theta_m`` (d dims) and ``b_m`` are model m's **ability**: a vector and a bias.

It is trained on every data set at once (``--format mixed``: MMLU pair outcomes, RouterBench's
11 models, LLMRouter's 9 graded models), with model names made canonical by
``routers.identities`` so that a model recorded under different names in different data sets
(Mixtral-8x7B, GPT-4-1106) has one ability, which ties the data sets together. The
representation is what transfers: what makes a prompt hard, and along which directions
models differ, is learned from ~20k prompts and ~90k outcomes of 19 models.

- **Any pair of known models** is routed from their abilities: ``strong_win = 0.5 +
  (q_strong - q_weak) / 2`` (the expected quality gain of the strong model, rescaled).
- **A new model** is placed without retraining: :func:`profile` fits its ability vector on a
  small labelled set with the representation frozen (``shunter profile``), or a policy maps
  it to a known model (``model_map``).

Served from ONNX: ``router.onnx`` maps embeddings to ``traits`` and ``easiness``; the
abilities live in ``router.json`` (``abilities``: ``{model: {"theta": [...], "bias": b}}``),
so profiling or re-fitting abilities never touches the graph. ``models`` lists every
canonical model and every declared alias (``aliases``: alias -> canonical), so a policy can
name a model the way any of the data sets does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import RouterScores, register
from .runtime import OnnxRouter, pair_strong_win, read_meta, write_meta


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


@register("prior")
class PriorRouter(OnnxRouter):
    """Serve-time universal prior: ONNX prompt traits x router.json abilities."""

    def __init__(self, path: str | Path, meta: dict[str, Any], threads: int = 1) -> None:
        super().__init__(path, meta, threads)
        aliases = meta.get("aliases") or {}
        ab = meta["abilities"]
        canon = [aliases.get(m, m) for m in self.models]
        self.theta = np.asarray([ab[c]["theta"] for c in canon], np.float32)  # (M, d)
        self.bias = np.asarray([ab[c]["bias"] for c in canon], np.float32)  # (M,)
        self.theta_t = np.ascontiguousarray(self.theta.T)  # (d, M)
        self.pair_cols = self._pair_cols()

    def traits(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a(x), e(x))``: shapes (n, d) and (n,)."""
        out = self.run(embeddings)
        return out["traits"], out["easiness"]

    def score(self, embeddings: np.ndarray) -> RouterScores:
        t, e = self.traits(embeddings)
        z = t @ self.theta_t  # (n, M) float32; the rest in place: this runs once per routed request
        z += self.bias
        z += e[:, None]
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1.0
        q = np.reciprocal(z, out=z)
        sw = pair_strong_win(q, *self.pair_cols) if self.pair_cols else None
        return RouterScores(self.models, q, sw, self.strong, self.weak)


# ------------------------------------------------------------------------------ training
def _net(dim: int, n_models: int, d: int, hidden: int, dropout: float, general: bool):
    import torch
    from torch import nn

    class PriorNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(dropout)
            self.hidden = nn.Linear(dim, hidden) if hidden else None
            width = hidden or dim
            self.traits = nn.Linear(width, d)
            self.easiness = nn.Linear(width, 1)
            self.theta = nn.Parameter(torch.randn(n_models, d) * 0.1)
            self.bias = nn.Parameter(torch.zeros(n_models))
            # general ability: theta_m = skill_m * g + theta (the model-specific rest)
            self.skill = nn.Parameter(torch.zeros(n_models)) if general else None
            self.g = nn.Parameter(torch.randn(d) * 0.1) if general else None

        def abilities(self) -> torch.Tensor:
            if self.skill is None or self.g is None:
                return self.theta
            return self.skill[:, None] * self.g[None, :] + self.theta

        def represent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.drop(x)
            if self.hidden is not None:
                h = torch.relu(self.hidden(h))
            return self.traits(h), self.easiness(h)[:, 0]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t, e = self.represent(x)
            return t @ self.abilities().T + self.bias[None, :] + e[:, None]

    return PriorNet()


def label_weights(quality: np.ndarray, groups: list[str], balance: str) -> np.ndarray:
    """Per-outcome loss weights (0 where the outcome is missing).

    ``balance="source"``: every source data set (the group prefix of a merged table) carries
    the same total weight, so MMLU's 13k rows do not drown RouterBench's 1.9k; ``"none"``:
    every outcome weighs 1.
    """
    from .data import source_of

    mask = np.isfinite(quality).astype(np.float32)
    if balance == "none":
        return mask
    if balance != "source":
        raise ValueError("balance must be 'source' or 'none'")
    src = np.array([source_of(g) for g in groups])
    w = np.zeros(len(groups), np.float32)
    names = sorted(set(src.tolist()))
    total = mask.sum()
    for s in names:
        rows = src == s
        n = mask[rows].sum()
        w[rows] = total / (len(names) * max(n, 1.0))
    return mask * w[:, None]


def fit(
    x: np.ndarray,
    quality: np.ndarray,
    weights: np.ndarray,
    *,
    d: int = 16,
    hidden: int = 0,
    dropout: float = 0.1,
    weight_decay: float = 1e-4,
    theta_decay: float = 1e-3,
    lr: float = 2e-3,
    epochs: int = 30,
    batch_size: int = 512,
    general: bool = False,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Fit the network by weighted soft-target BCE for a fixed number of epochs (no early
    stopping: the fit is a deterministic function of the data and the seed). ``general``: each
    ability is ``skill_m * g + theta_m`` with one shared direction ``g`` (weight decay
    ``theta_decay`` on the model-specific ``theta_m`` only), so a pair's gap leans on what
    separates strong from weak models across every data set. Returns numpy
    weights: ``W1, b1`` (hidden layer; absent when ``hidden=0``), ``Wt, bt`` (traits),
    ``We, be`` (easiness), ``theta`` (M, d), ``bias`` (M,)."""
    import torch
    from torch import nn

    torch.set_num_threads(1)  # a shared box: one core, no spinning threads
    torch.manual_seed(seed)
    y = np.nan_to_num(np.clip(quality, 0, 1), nan=0.0).astype(np.float32)
    net = _net(x.shape[1], y.shape[1], d, hidden, dropout, general)
    with torch.no_grad():  # start each model at its base rate
        p = np.clip((y * weights).sum(0) / np.maximum(weights.sum(0), 1e-9), 1e-3, 1 - 1e-3)
        net.bias.copy_(torch.tensor(np.log(p / (1 - p)), dtype=torch.float32))
    own = ("theta", "bias", "skill", "g")
    params = [
        {"params": [p for n, p in net.named_parameters() if n not in own], "weight_decay": weight_decay},
        {"params": [net.theta], "weight_decay": theta_decay},
        {"params": [p for p in (net.bias, net.skill, net.g) if p is not None], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(params, lr=lr)
    X, Y, W = (torch.tensor(a) for a in (np.asarray(x, np.float32), y, np.asarray(weights, np.float32)))
    bce = nn.BCEWithLogitsLoss(reduction="none")
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(X), generator=gen)
        for s in range(0, len(perm), batch_size):
            ii = perm[s : s + batch_size]
            loss = (bce(net(X[ii]), Y[ii]) * W[ii]).sum() / W[ii].sum().clamp_min(1e-9)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    out = {
        "Wt": net.traits.weight.detach().numpy().T.copy(),
        "bt": net.traits.bias.detach().numpy().copy(),
        "We": net.easiness.weight.detach().numpy().T.copy(),
        "be": net.easiness.bias.detach().numpy().copy(),
        "theta": net.abilities().detach().numpy().copy(),
        "bias": net.bias.detach().numpy().copy(),
    }
    if net.hidden is not None:
        out["W1"] = net.hidden.weight.detach().numpy().T.copy()
        out["b1"] = net.hidden.bias.detach().numpy().copy()
    return out


def represent(w: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training-time reference of the graph: ``(traits, easiness)`` in numpy float32."""
    h = np.asarray(x, np.float32)
    if "W1" in w:
        h = np.maximum(h @ w["W1"] + w["b1"], 0)
    return (h @ w["Wt"] + w["bt"]).astype(np.float32), (h @ w["We"] + w["be"])[:, 0].astype(np.float32)


def predict(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Training-time reference of ``quality`` for the fitted models (columns of ``theta``)."""
    t, e = represent(w, x)
    return _sigmoid(t @ w["theta"].T + w["bias"][None, :] + e[:, None])


def export(w: dict[str, np.ndarray], out: str | Path) -> None:
    from .onnx_graphs import GraphBuilder

    dim = (w["W1"] if "W1" in w else w["Wt"]).shape[0]
    g = GraphBuilder(dim)
    h = g.input_name
    if "W1" in w:
        h = g.op("Relu", [g.dense(h, w["W1"], w["b1"])])
    g.op("Add", [g.op("MatMul", [h, g.const(w["Wt"])]), g.const(w["bt"])], "traits")
    e = g.dense(h, w["We"], w["be"])
    g.op("Squeeze", [e, g.const(np.array([1], np.int64))], "easiness")
    g.save(
        Path(out) / "router.onnx",
        {"traits": ["N", int(w["Wt"].shape[1])], "easiness": ["N"]},
        doc="shunter universal prior: prompt traits and easiness",
    )


def abilities_of(models: list[str], theta: np.ndarray, bias: np.ndarray) -> dict[str, dict[str, Any]]:
    return {
        m: {"theta": [round(float(v), 6) for v in theta[j]], "bias": round(float(bias[j]), 6)}
        for j, m in enumerate(models)
    }


def train(
    table,
    emb: np.ndarray,
    out: str | Path,
    *,
    seed: int = 0,
    balance: str = "source",
    strong: str | None = None,
    weak: str | None = None,
    **fit_kw: Any,
) -> tuple[dict[str, Any], Any]:
    """Fit on a (usually ``mixed``) table, export ``router.onnx``, and return (meta, reference).

    ``strong``/``weak`` name the pair whose ``strong_win`` the router reports by default
    (default: GPT-4-1106 vs Mixtral-8x7B when both are present, the RouteLLM pair).
    """
    from .export import base_meta
    from .identities import aliases_of, canonical

    models = [canonical(m) for m in table.models]
    if len(set(models)) != len(models):
        raise ValueError(f"two columns of the table are the same model: {table.models}")
    x = np.asarray(emb, np.float32)
    w = fit(x, table.quality, label_weights(table.quality, table.groups, balance), seed=seed, **fit_kw)
    export(w, out)
    aliases = aliases_of(models)
    strong, weak = _default_pair(models, strong, weak)
    names = models + [a for a in sorted(aliases) if a not in models]
    meta = base_meta(
        "prior",
        table,
        models=names,
        strong=strong,
        weak=weak,
        aliases=aliases,
        abilities=abilities_of(models, w["theta"], w["bias"]),
        dims=int(w["Wt"].shape[1]),
        hidden=int(w["W1"].shape[1]) if "W1" in w else 0,
        balance=balance,
        onnx_outputs=["traits", "easiness"],
    )
    meta["typical_cost_usd"].update(
        {a: meta["typical_cost_usd"][c] for a, c in aliases.items() if c in meta["typical_cost_usd"]}
    )
    if table.fmt == "mixed":
        meta["training_data"] = [dict(s) for s in table.extra.get("sources", [])]
        meta["masked_outcomes"] = table.extra.get("masked", {})

    def reference(e: np.ndarray) -> RouterScores:
        q = predict(w, e)
        col = {m: j for j, m in enumerate(models)}
        full = q[:, [col[canonical(m)] for m in names]]
        sw = pair_strong_win(full, names.index(strong), names.index(weak)) if strong and weak else None
        return RouterScores(names, full, sw, strong, weak)

    return meta, reference


ROUTELLM_PAIR = ("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1")


def _default_pair(models: list[str], strong: str | None, weak: str | None) -> tuple[str | None, str | None]:
    from .identities import canonical

    if strong or weak:
        if not (strong and weak):
            raise ValueError("give both strong and weak, or neither")
        for m in (strong, weak):
            if canonical(m) not in models:
                raise ValueError(f"{m!r} is not a model of this table ({models})")
        return strong, weak
    if all(m in models for m in ROUTELLM_PAIR):
        return ROUTELLM_PAIR
    return None, None


# ------------------------------------------------------------------------------ profiling
def fit_ability(
    traits: np.ndarray,
    easiness: np.ndarray,
    y: np.ndarray,
    prior_theta: np.ndarray,
    prior_bias: float,
    l2: float = 1.0,
    iters: int = 50,
) -> tuple[np.ndarray, float]:
    """A new model's ``(theta, bias)`` from its outcomes ``y`` in [0, 1] on prompts with the
    given traits (representation frozen): soft-target logistic regression by Newton's method,
    with an L2 pull of strength ``l2`` (per outcome-sum) toward ``prior_theta``/``prior_bias``
    (the mean known ability), so a few dozen outcomes move it only as far as they support."""
    t = np.asarray(traits, np.float64)
    z = np.concatenate([t, np.ones((len(t), 1))], axis=1)
    prior = np.concatenate([np.asarray(prior_theta, np.float64), [prior_bias]])
    beta = prior.copy()
    y = np.clip(np.asarray(y, np.float64), 0, 1)
    off = np.asarray(easiness, np.float64)
    reg = l2 * np.eye(len(beta))
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(z @ beta + off)))
        grad = z.T @ (p - y) + reg @ (beta - prior)
        hess = (z * (p * (1 - p))[:, None]).T @ z + reg
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1].astype(np.float32), float(beta[-1])


def profile(
    path: str | Path,
    model: str,
    embeddings: np.ndarray,
    quality: np.ndarray,
    cost_usd: float | None = None,
    l2: float = 1.0,
) -> dict[str, Any]:
    """Add (or re-fit) ``model`` in a prior artifact from a small labelled set, in place.

    The ONNX graph is unchanged: the model's ability is fitted on the frozen traits of the
    labelled prompts (:func:`fit_ability`) and written to ``router.json``.
    """
    from .base import load_router

    router = load_router(path)
    if router.kind != "prior":
        raise ValueError(f"{path} is a {router.kind!r} router, not a prior")
    meta = read_meta(path)
    y = np.asarray(quality, np.float64)
    ok = np.isfinite(y)
    if ok.sum() < 2:
        raise ValueError("profiling needs at least 2 labelled prompts")
    t, e = router.traits(np.asarray(embeddings, np.float32)[ok])  # type: ignore[attr-defined]
    known = list(meta["abilities"].values())
    prior_theta = np.mean([a["theta"] for a in known], axis=0)
    prior_bias = float(np.mean([a["bias"] for a in known]))
    theta, bias = fit_ability(t, e, y[ok], prior_theta, prior_bias, l2)
    meta["abilities"][model] = {"theta": [round(float(v), 6) for v in theta], "bias": round(bias, 6)}
    if model not in meta["models"]:
        meta["models"].append(model)
    if cost_usd is not None:
        meta.setdefault("typical_cost_usd", {})[model] = float(cost_usd)
    meta.setdefault("profiled", {})[model] = {"rows": int(ok.sum()), "l2": l2}
    write_meta(path, meta)
    return meta
