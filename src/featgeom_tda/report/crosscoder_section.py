"""The report section of the crosscoder stage (present only when the recipe switched the crosscoder on)."""

from __future__ import annotations

from pathlib import Path

from featgeom_tda.report.html import Figure, Section, Table
from featgeom_tda.results import CrosscoderResult

__all__ = ["crosscoder_section", "CLASS_LABELS"]

CLASS_LABELS = {"shared": "shared", "exclusive_a": "only A", "exclusive_b": "only B", "partial": "other (partial)",
                "dead": "dead (never fires)", "none": "none (feature never fires)"}


def _range(name: str, t: float, band: list[float]) -> str:
    lo, hi = band
    return {"shared": f"{lo:g} <= r <= {hi:g}", "exclusive_a": f"r < {t:g}", "exclusive_b": f"r > {1 - t:g}",
            "partial": "between", "dead": "no firing on the compared rows"}[name]


def crosscoder_section(cc: CrosscoderResult) -> Section:
    if cc.skipped is not None:
        return Section("crosscoder", "Crosscoder: one dictionary read from both models", notes=[cc.skipped])
    t, band = cc.exclusive_threshold, cc.shared_band
    fit_rows = [[f"model {side}", m.layer, m.d_model, m.fvu, m.l0] for side, m in zip("AB", cc.models)]
    fit_rows.append(["both (each scaled to unit mean squared norm)", "", sum(m.d_model for m in cc.models), cc.fvu, cc.l0])
    by_class = {row.latent_class: row for row in cc.agreement}
    class_rows = []
    for name in ("shared", "exclusive_a", "exclusive_b", "partial", "dead"):
        row = by_class.get(name)
        class_rows.append([CLASS_LABELS[name], _range(name, t, band), cc.class_counts.get(name, 0),
                           row.mean_corr_a if row else None, row.mean_corr_b if row else None,
                           row.n_on_matched_pair if row else None])
    feature_rows = [[side, *[counts.get(name, 0) for name in ("shared", "exclusive_a", "exclusive_b", "partial", "none")]]
                    for side, counts in (("SAE A", cc.feature_classes_a), ("SAE B", cc.feature_classes_b))]
    notes = [f"Post-hoc matching kept {cc.n_matched_pairs} pairs; {cc.n_pairs_explained} of them are some shared "
             "latent's best-correlated A feature together with its best-correlated B feature."]
    if cc.block_cosines is not None:
        bc = cc.block_cosines
        mean, median = bc.get("mean_cosine"), bc.get("median_cosine")
        notes.append(f"Block cosines of the {bc.get('n_latents')} shared latents: mean "
                     f"{'n/a' if mean is None else f'{mean:.3f}'}, median {'n/a' if median is None else f'{median:.3f}'} "
                     f"({bc.get('note', '')}).")
    elif cc.block_cosines_skipped:
        notes.append(f"Block cosines not computed: {cc.block_cosines_skipped}.")
    flagged = ", ".join(map(str, cc.flagged_latents[:20])) + (", ..." if cc.n_flagged > 20 else "")
    notes.append(f"Latent scaling: {cc.n_flagged} exclusive-looking latents have an activation ratio nu >= "
                 f"{cc.nu_threshold:g}, i.e. the other model's activations carry them too"
                 + (f" (latents {flagged})." if cc.n_flagged else "."))
    rows = ("units aligned across the two tokenizers (each read at its last token in each model)"
            if cc.rows == "aligned units" else "token rows")
    return Section(
        "crosscoder",
        "Crosscoder: one dictionary read from both models",
        how_to_read=("peaks of r near 0 and 1 are latents only one model uses, near 0.5 latents both use; a shared "
                     "latent whose best A and best B features are a matched pair confirms that match by a second method."),
        intro=(f"An acausal TopK crosscoder ({cc.width} latents, k = {cc.k}, {cc.training_steps} training steps) "
               f"reads both models' raw activations at the main pair's hooks on the same {cc.n_tokens} {rows} "
               "the matching correlates and writes a reconstruction of each; r = |d_B| / (|d_A| + |d_B|) compares a "
               "latent's two decoder blocks. FVU = fraction of variance unexplained; L0 = active latents per token "
               "that write to that model."),
        tables=[
            Table("Reconstruction of each model", ["model", "layer", "width", "FVU", "L0"], fit_rows,
                  csv_name="crosscoder_fit.csv"),
            Table("Latent classes by relative decoder norm, and each class against the SAEs: mean best activation "
                  "correlation of its latents with any SAE A / SAE B feature, and how many pick a matched pair",
                  ["class", "r", "latents", "mean best corr. with SAE A", "mean best corr. with SAE B",
                   "on a matched pair"], class_rows, csv_name="crosscoder_classes.csv"),
            Table("Agreement with matching: SAE features by the class of their best-correlated crosscoder latent",
                  ["SAE", "shared", "only A", "only B", "other", "none"], feature_rows,
                  csv_name="crosscoder_features.csv"),
        ],
        figures=[Figure("Relative decoder norms of the crosscoder's live latents (shaded: only A, shared, only B)",
                        cc.histogram)] if cc.histogram and Path(cc.histogram).exists() else [],
        notes=notes,
    )
