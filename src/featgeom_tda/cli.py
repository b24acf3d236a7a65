"""The ``featgeom`` command. Subcommands import their heavy dependencies only when they run."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from featgeom_tda.core._validation import check_output_dir

log = logging.getLogger("featgeom_tda")


class CommandError(Exception):
    """A one-line reason for a non-zero exit (bad input, missing file)."""


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors in one line (exit code 2) and a pointer to ``--help``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _cmd_info(args: argparse.Namespace) -> int:
    import featgeom_tda

    print(f"featgeom_tda {featgeom_tda.__version__}")
    print("public API: " + ", ".join(n for n in featgeom_tda.__all__ if not n.startswith("_")))
    return 0


def _cmd_store_info(args: argparse.Namespace) -> int:
    from featgeom_tda.core.store import ActivationStore

    store = ActivationStore.open(args.path)
    print(store)
    unfinished = store.incomplete_reason
    if unfinished:
        print(f"not complete: {unfinished}")
    if args.verify:
        store.verify(allow_partial=unfinished is not None)
        print(f"all {store.n_shards} listed shard checksums verified" + (" (the store is not complete)" if unfinished else ""))
    return 0


def _add_store_repair(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="an activation store directory whose manifest is damaged or lost")


def _cmd_store_repair(args: argparse.Namespace) -> int:
    from featgeom_tda.core.store import ActivationStore

    def progress(index: int, name: str) -> None:
        print(f"  {name}: intact", flush=True)

    report = ActivationStore.rebuild_manifest(args.path, on_shard=progress)
    print(report)
    print("the store is unfinished: rerun the extraction into it to finish it (intact shards are kept)")
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from featgeom_tda.pipeline import STAGES

    p.add_argument("--engine", default=None, choices=["local", "ray"],
                   help="where extraction, matching and nulls run (default: the recipe's engine, local)")
    p.add_argument("--address", default=None, help="with --engine ray: the Ray cluster to join (default: a local one)")
    p.add_argument("--out", default=None, help="output directory (default: the recipe's output_dir)")
    p.add_argument(
        "--force", action="append", default=[], metavar="STAGE", choices=STAGES,
        help=f"rerun this stage even if cached (repeatable; one of {', '.join(STAGES)})",
    )


def _load_engines() -> None:
    """Register the engines above the pipeline (``engine: ray``); ray itself is imported only when one runs."""
    import featgeom_tda.distributed  # noqa: F401


def _add_demo(p: argparse.ArgumentParser) -> None:
    _add_run_options(p)


def _cmd_demo(args: argparse.Namespace) -> int:
    from featgeom_tda.pipeline import run_recipe_file
    from featgeom_tda.pipeline.packaged import packaged_recipe

    _load_engines()
    return run_recipe_file(packaged_recipe("embedded"), out_dir=args.out, force=args.force, engine=args.engine,
                           address=args.address)


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="a recipe YAML file (see data_recipes/) or a packaged recipe name (e.g. embedded)")
    _add_run_options(p)


def _cmd_run(args: argparse.Namespace) -> int:
    from featgeom_tda.pipeline import run_recipe_file
    from featgeom_tda.pipeline.packaged import recipe_path

    _load_engines()
    return run_recipe_file(recipe_path(args.recipe), out_dir=args.out, force=args.force, engine=args.engine,
                           address=args.address)


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("outdir", help="the output directory of an earlier run")


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from featgeom_tda.pipeline import RECIPE_COPY, run_recipe_file

    recipe = Path(args.outdir) / RECIPE_COPY
    if not recipe.exists():
        raise CommandError(f"{args.outdir} holds no {RECIPE_COPY}; run a recipe into it first")
    _load_engines()
    return run_recipe_file(recipe, out_dir=args.outdir, force=["report"])


def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="+", help="recipe YAML files or packaged recipe names (e.g. embedded)")


def _cmd_validate(args: argparse.Namespace) -> int:
    from featgeom_tda.pipeline.packaged import recipe_path
    from featgeom_tda.pipeline.recipe import check_hooks, check_registry_names, load_recipe

    for path in args.recipe:
        recipe = load_recipe(recipe_path(path))
        names = check_registry_names(recipe)
        check_hooks(recipe, where=str(path))
        print(f"{path}: valid ({' vs '.join(names)})")
    return 0


def _add_build_default(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default="featgeom_cache", help="cache directory (default: ./featgeom_cache)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (an integer >= 0)")
    p.add_argument("--small", action="store_true", help="a tiny variant that builds in seconds")


def _cmd_build_default(args: argparse.Namespace) -> int:
    import json

    from featgeom_tda.sources.embedded import build_embedded_default

    emb = build_embedded_default(args.cache_dir, seed=args.seed, small=args.small)
    print(json.dumps(emb.report, indent=1, default=str))
    return 0


def _add_match(p: argparse.ArgumentParser) -> None:
    p.add_argument("store_a", help="activation store of model A")
    p.add_argument("store_b", help="activation store of model B (same token rows)")
    p.add_argument("--out", required=True, help="directory to save the matching in")
    p.add_argument("--mode", default="one-to-one", choices=["one-to-one", "many-to-one", "mutual", "optimal"],
                   help="optimal: the one-to-one pairing of maximum total correlation")
    p.add_argument("--threshold", type=float, default=None, help="drop pairs with correlation below this")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="ray: shard the matching over a Ray cluster (same result; needs the ray extra)")
    p.add_argument("--address", default=None, help="the Ray cluster to join (default: start a local one)")


def _cmd_match(args: argparse.Namespace) -> int:
    from featgeom_tda.analyses.matching import match_features
    from featgeom_tda.core.store import ActivationStore

    a = ActivationStore.open(args.store_a).read()  # an unfinished or incomplete store is refused here
    b = ActivationStore.open(args.store_b).read()
    if args.address is not None and args.engine != "ray":
        raise CommandError("--address applies to --engine ray")
    if args.engine == "ray":
        from featgeom_tda.distributed import ray_match_features

        m = ray_match_features(a, b, mode=args.mode, threshold=args.threshold, address=args.address)
    else:
        m = match_features(a, b, mode=args.mode, threshold=args.threshold, progress=True)
    m.save(args.out)
    print(f"{len(m)} pairs (mean correlation {float(m.correlation.mean()) if len(m) else float('nan'):.3f}); removed: {m.filtered}; saved to {args.out}")
    return 0


def _add_synthetic(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=_seed, default=0, help="random seed (an integer >= 0)")
    p.add_argument("--sweep", action="store_true", help="also sweep the shared fraction and the SAE width")
    p.add_argument("--crosscoder", action="store_true",
                   help="print the crosscoder-against-matching ground-truth table over the shared-fraction sweep instead")
    p.add_argument("--min-precision", type=float, default=None, metavar="F",
                   help="exit 1 when the matching's precision is below F")
    p.add_argument("--min-recall", type=float, default=None, metavar="F",
                   help="exit 1 when the recall of shared features is below F")


def _cmd_synthetic(args: argparse.Namespace) -> int:
    from featgeom_tda.pipeline.selfcheck_sweep import run_synthetic_check

    from featgeom_tda.core._validation import check_number

    if args.crosscoder:
        from featgeom_tda.pipeline.crosscoder_check import crosscoder_truth_markdown, crosscoder_truth_rows

        print(crosscoder_truth_markdown(crosscoder_truth_rows(seeds=(args.seed,))))
        return 0
    limits = {name: check_number(value, f"--min-{name}", low=0.0, high=1.0)
              for name, value in (("precision", args.min_precision), ("recall", args.min_recall)) if value is not None}
    cards = []
    print(run_synthetic_check(seed=args.seed, sweep=args.sweep, on_card=cards.append))
    below = [f"{name} {getattr(cards[0], name):.3f} < {limit:g}" for name, limit in limits.items()
             if not getattr(cards[0], name) >= limit]  # NaN counts as below
    if below:
        print(f"featgeom synthetic: check failed: {'; '.join(below)}", file=sys.stderr)
        return 1
    return 0


def _add_topology(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", help="an (n, d) matrix: .npy, .safetensors (see --key) or a saved SAE directory")
    p.add_argument("--out", required=True, help="directory for mapper.html, persistence/ and topology.json")
    p.add_argument("--key", default=None, help="tensor name in a safetensors file (default: the only one, else W_dec)")
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    p.add_argument("--lens", default="pca", choices=["pca", "umap", "l2norm"], help="Mapper lens (default pca)")
    p.add_argument("--cubes", type=int, default=10, help="Mapper intervals per lens dimension (default 10)")
    p.add_argument("--overlap", type=float, default=0.3, help="Mapper interval overlap (default 0.3)")
    p.add_argument("--landmarks", type=int, default=1000,
                   help="max-min landmarks for persistence (default 1000; all rows when fewer)")
    p.add_argument("--maxdim", type=int, default=1, help="highest homology dimension (default 1)")
    p.add_argument("--baselines", type=int, default=3,
                   help="Gaussian clouds of the same spectrum to compare with (default 3; 0: none)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (an integer >= 0)")
    p.add_argument("--no-mapper", action="store_true", help="skip the Mapper graph")
    p.add_argument("--no-persistence", action="store_true", help="skip persistent homology")


def _cmd_topology(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from featgeom_tda.sources.weights import load_weight_file
    from featgeom_tda.core.types import json_default

    for name in ("landmarks", "baselines", "maxdim"):
        if getattr(args, name) < 0:
            raise CommandError(f"--{name} must be >= 0, got {getattr(args, name)}")
    weights = load_weight_file(args.weights, key=args.key)
    points = weights.normalized() if args.metric == "cosine" else weights.weights
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"weights": str(args.weights), "shape": list(weights.shape), "metric": args.metric}
    print(f"{weights.n_features} rows x {weights.dim} columns from {args.weights}")
    if not args.no_mapper:
        from featgeom_tda.analyses.topology import mapper_graph
        from featgeom_tda.viz.mapper_html import save_mapper_html

        graph = mapper_graph(points, lens=args.lens, n_cubes=args.cubes, overlap=args.overlap, metric=args.metric,
                             seed=args.seed)
        save_mapper_html(graph, out / "mapper.html", title=f"Mapper of {Path(args.weights).name}", seed=args.seed)
        stats = graph.statistics()
        result["mapper"] = {"html": "mapper.html", "statistics": stats, "config": graph.config}
        print(f"mapper: {stats['n_nodes']} nodes, {stats['n_edges']} edges, {stats['n_components']} components "
              f"-> {out / 'mapper.html'}")
    if not args.no_persistence:
        from featgeom_tda.analyses.topology import compare_with_gaussian, persistence
        from featgeom_tda.viz.topology import plot_diagrams

        n_land = args.landmarks if args.landmarks > 0 else None  # a cap: all rows when fewer
        options = dict(maxdim=args.maxdim, metric=args.metric, n_landmarks=n_land)
        if args.baselines > 0:
            cmp = compare_with_gaussian(points, n_baselines=args.baselines, seed=args.seed, **options)
            diagrams = cmp.pop("data")
            baselines = cmp.pop("baselines")
            result["gaussian_comparison"] = cmp
        else:
            diagrams, baselines = persistence(points, seed=args.seed, **options), []
        diagrams.save(out / "persistence")
        panels = {Path(args.weights).name: diagrams}
        if baselines:
            panels["Gaussian cloud, same spectrum"] = baselines[0]
        plot_diagrams(panels, out / "persistence.png")
        summary = diagrams.summary()
        result["persistence"] = {"summary": summary, "engine": diagrams.engine, "exact": diagrams.exact,
                                 "n_points": diagrams.n_points, "dir": "persistence", "plot": "persistence.png"}
        for dim, s in summary.items():
            print(f"persistence {dim}: {s['n_bars']} bars, total {s['total_persistence']:.4g}, "
                  f"max {s['max_persistence']:.4g}")
    (out / "topology.json").write_text(json.dumps(result, indent=1, default=json_default))
    print(f"wrote {out / 'topology.json'}")
    return 0


def _add_open(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", nargs="?", default="featgeom_out/embedded",
                   help="a run's output folder or an .html file (default: featgeom_out/embedded, the demo's)")


def _cmd_open(args: argparse.Namespace) -> int:
    import webbrowser
    from pathlib import Path

    target = Path(args.out)
    if target.is_dir():
        target = target / "report" / "report.html"
    if not target.is_file():
        raise CommandError(f"{args.out} holds no report ({target} does not exist); run a recipe into it first")
    url = target.resolve().as_uri()
    try:
        webbrowser.get()
    except webbrowser.Error:
        print(target.resolve())  # no browser here: the path to open elsewhere
        return 0
    webbrowser.open(url)
    print(f"opened {target.resolve()}")
    return 0


def _add_store_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="an activation store directory")
    p.add_argument("--verify", action="store_true", help="check every shard's checksum")


# name -> (help, add-arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "demo": ("run the embedded offline recipe end to end and write the report", _add_demo, _cmd_demo),
    "run": ("run a recipe end to end and write the report", _add_run, _cmd_run),
    "report": ("rebuild the report of an earlier run from its cached stages", _add_report, _cmd_report),
    "validate": ("check recipes against the schema and the model / SAE registries", _add_validate, _cmd_validate),
    "build-default": ("build the embedded corpus, tokenizer, models and SAEs and print their numbers", _add_build_default, _cmd_build_default),
    "match": ("match the features of two activation stores", _add_match, _cmd_match),
    "synthetic": ("score matching and metrics on synthetic models with known shared features", _add_synthetic, _cmd_synthetic),
    "topology": ("Mapper HTML and persistent homology of one weight matrix (e.g. an SAE decoder)", _add_topology, _cmd_topology),
    "store-info": ("describe (and optionally verify) an activation store", _add_store_info, _cmd_store_info),
    "store-repair": ("rebuild a damaged or lost store manifest from the intact, checksummed shards", _add_store_repair, _cmd_store_repair),
    "open": ("open a run's report in the browser (or print its path where there is none)", _add_open, _cmd_open),
    "info": ("print the version and the public API", lambda p: None, _cmd_info),
}


HEAVY_COMMANDS = {"demo", "run", "report", "build-default", "synthetic", "match", "topology"}
MAX_THREADS = 1024  # torch threads; more is a typo, not a machine


def _quiet_dependencies(level: int) -> None:
    """Keep the libraries below us at WARNING unless -vv asks for everything."""
    for name in ("transformer_lens", "sae_lens", "transformers", "huggingface_hub", "numba", "matplotlib", "urllib3",
                 "filelock", "kmapper", "PIL"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING) if level > logging.DEBUG else logging.DEBUG)


EXIT_CODES = """exit codes:
  0  done
  1  a check the user asked for did not pass (e.g. featgeom synthetic below its recovery threshold)
  2  a user error: one line naming the argument or file and what was expected
  3  an internal error: one line; --debug shows the traceback
  130 interrupted (Ctrl-C); finished stages and store shards are kept and a rerun resumes"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="featgeom",
        description="Geometry and topology of SAE features across language models.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v: progress messages (INFO); -vv: internals too (DEBUG)")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only (no progress lines or summary)")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an internal error")
    parser.add_argument(
        "--threads", type=int, default=1, metavar="N",
        help="torch CPU threads for training and forward passes (default 1: small models run fastest so)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Exit codes: 0 done; 2 a user error (one line naming it); 3 an internal error (one
    line; ``--debug`` shows the traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    _quiet_dependencies(level)
    if args.quiet:
        import os

        os.environ["TQDM_DISABLE"] = "1"
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    if args.threads < 1:
        print(f"featgeom: error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    if args.threads > MAX_THREADS:
        print(f"featgeom: error: --threads must be at most {MAX_THREADS}, got {args.threads}", file=sys.stderr)
        return 2
    for flag in ("--out", "--cache-dir"):
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            try:
                check_output_dir(value, flag)
            except ValueError as exc:
                print(f"featgeom {args.command}: error: {exc}", file=sys.stderr)
                return 2
    if args.command in HEAVY_COMMANDS:
        import torch

        torch.set_num_threads(args.threads)
    try:
        if args.quiet:
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):
                return int(args._run(args) or 0)
        return int(args._run(args) or 0)
    except (CommandError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:
        print(f"featgeom {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"featgeom {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line, the traceback on request
        if args.debug:
            raise
        print(f"featgeom {args.command}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
