import subprocess
import sys
import time
from pathlib import Path

from featgeom_tda import cli

BIN = Path(sys.executable).parent


def test_import_is_fast_and_light():
    code = "import time,sys; t=time.perf_counter(); import featgeom_tda; print(time.perf_counter()-t); print(' '.join(sorted(m for m in ('torch','sae_lens','transformer_lens','umap','kmapper') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert float(out[0]) < 2.0
    assert out[1] == "", f"heavy modules imported at package import: {out[1]}"


def test_help_lists_subcommands():
    out = subprocess.run([str(BIN / "featgeom"), "--help"], capture_output=True, text=True, check=True).stdout
    for name in cli.COMMANDS:
        assert name in out


def test_each_subcommand_has_help(capsys):
    for name in cli.COMMANDS:
        try:
            cli.main([name, "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        assert "usage: featgeom" in capsys.readouterr().out


def test_bad_input_gives_one_line_and_nonzero(tmp_path, capsys):
    rc = cli.main(["store-info", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "manifest.json is missing" in err


def test_every_public_name_resolves():
    import featgeom_tda

    missing = []
    for name in featgeom_tda._EXPORTS:
        try:
            getattr(featgeom_tda, name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name}: {exc}")
    assert not missing
