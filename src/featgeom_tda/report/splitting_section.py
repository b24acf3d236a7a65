"""The report section of the splitting stage (present only when the recipe switched feature splitting on)."""

from __future__ import annotations

from pathlib import Path

from featgeom_tda.analyses.geometry.baselines import METRIC_LABELS
from featgeom_tda.report.html import Figure, ScoreCell, Section, Table
from featgeom_tda.results import SplittingResult

__all__ = ["splitting_section"]

TITLE = "Feature splitting across SAE widths"


def _cell(s: object) -> ScoreCell | None:
    return None if s is None else ScoreCell(s.score, s.null_mean, s.null_std, s.p_value)  # type: ignore[attr-defined]


def splitting_section(sp: SplittingResult) -> Section:
    if sp.skipped is not None:
        return Section("splitting", TITLE, notes=[sp.skipped])
    metrics = list(dict.fromkeys(m for w in sp.widths for m in w.metrics))
    width_rows = [
        [f"{w.width_multiple}x", w.n_features, "yes" if w.reused else "", w.fvu, w.l0, w.dead_fraction, w.n_pairs,
         w.mean_correlation,
         *[_cell(w.metrics.get(m)) or w.skipped for m in metrics]]
        for w in sp.widths
    ]
    step_rows = []
    for s in sp.steps:
        x = s.summary
        step_rows.append([f"{s.narrow}x -> {s.wide}x", x.get("n_narrow"), x.get("n_wide"), x.get("n_families"),
                          x.get("n_split"), x.get("split_fraction"), x.get("mean_family_size"), x.get("max_family_size"),
                          x.get("n_unassigned_wide"), x.get("reconstructed_fraction"),
                          x.get("median_reconstruction_cosine"), x.get("median_best_child_cosine")])
    example_rows = [[f"{s.narrow}x -> {s.wide}x", e["parent"], e["n_children"], ", ".join(map(str, e["children"]))
                     + (", ..." if e["n_children"] > len(e["children"]) else ""),
                     ", ".join(f"{c:.2f}" for c in e["child_cosine"]), e["reconstruction_cosine"], e["best_child_cosine"]]
                    for s in sp.steps for e in s.examples]
    figures = [Figure(caption, png) for caption, png in sp.figures.items() if Path(png).exists()]
    return Section(
        "splitting", TITLE,
        how_to_read=("a narrow feature that splits has two or more wide children; a score that holds as width grows says "
                     "the shared structure is not an accident of one dictionary size."),
        intro=(f"SAEs of one spec at several widths read the same hook ({sp.layer}) and are encoded on the same compared "
               f"rows. Between consecutive widths every live wide feature is assigned to the narrow feature it correlates "
               f"with best (one-to-many); it is that feature's child when the activation correlation is at least "
               f"{sp.min_correlation:g} and the decoder cosine at least {sp.min_cosine:g}. Reconstructed: the children's "
               f"summed unit decoder rows reach cosine 0.9 with the parent's. Each width is also matched against "
               f"{sp.against} and scored like the grid (score beside its random-pairing null, p = (1 + #null >= score) / "
               "(1 + permutations)). FVU, L0 and the dead fraction are measured on the compared rows."),
        tables=[
            Table("Each width: fit on the compared rows, and its matching against B scored like the grid",
                  ["width", "features", "the layer's own SAE", "FVU", "L0", "dead", "pairs with B", "mean correlation",
                   *[METRIC_LABELS.get(m, m) for m in metrics]], width_rows, csv_name="splitting_widths.csv"),
            Table("Split families between consecutive widths",
                  ["step", "narrow features", "wide features", "families", "split (2+ children)", "split fraction",
                   "mean family size", "largest family", "wide features in no family", "reconstructed fraction",
                   "median reconstruction cosine", "median best-child cosine"], step_rows,
                  csv_name="splitting_families.csv"),
            Table("The largest families (narrow feature, its wide children and their decoder cosines with it)",
                  ["step", "narrow feature", "children", "wide features", "child cosines", "reconstruction cosine",
                   "best-child cosine"], example_rows, csv_name="splitting_examples.csv"),
        ],
        figures=figures,
    )
