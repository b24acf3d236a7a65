"""The ``featgeom`` command. Subcommands import their heavy dependencies only when they run."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

log = logging.getLogger("featgeom_tda")


class CommandError(Exception):
    """A one-line reason for a non-zero exit (bad input, missing file)."""


def _cmd_info(args: argparse.Namespace) -> int:
    import featgeom_tda

    print(f"featgeom_tda {featgeom_tda.__version__}")
    print("public API: " + ", ".join(n for n in featgeom_tda.__all__ if not n.startswith("_")))
    return 0


def _cmd_store_info(args: argparse.Namespace) -> int:
    from featgeom_tda.store import ActivationStore

    store = ActivationStore.open(args.path)
    print(store)
    if args.verify:
        store.verify()
        print("all shard checksums verified")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from featgeom_tda.pipeline import run_recipe_file
    from featgeom_tda.sources.concepts import DATA_RECIPES

    return run_recipe_file(DATA_RECIPES / "embedded.yaml", out_dir=args.out, force=args.force)


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output directory (default: the recipe's, featgeom_out/embedded)")
    p.add_argument("--force", action="append", default=[], metavar="STAGE", help="rerun this stage (repeatable)")


def _add_store_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="an activation store directory")
    p.add_argument("--verify", action="store_true", help="check every shard's checksum")


# name -> (help, add-arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "demo": ("run the embedded offline recipe end to end", _add_demo, _cmd_demo),
    "info": ("print the version and the public API", lambda p: None, _cmd_info),
    "store-info": ("describe (and optionally verify) an activation store", _add_store_info, _cmd_store_info),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featgeom",
        description="Geometry and topology of SAE features across language models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (CommandError, ValueError, FileNotFoundError) as exc:
        print(f"featgeom {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
