import subprocess
import sys
import time
from pathlib import Path

import pytest

from featgeom_tda import cli
from featgeom_tda.cli import main

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


def _noisy_circle(n=150, d=20, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2 * np.pi, n)
    basis, _ = np.linalg.qr(rng.standard_normal((d, 2)))
    return (np.column_stack([np.cos(theta), np.sin(theta)]) @ basis.T + 0.02 * rng.standard_normal((n, d))).astype(np.float32)


def test_topology_command_on_a_circle(tmp_path, capsys):
    import json

    import numpy as np

    np.save(tmp_path / "w.npy", _noisy_circle())
    out = tmp_path / "out"
    rc = cli.main(["topology", str(tmp_path / "w.npy"), "--out", str(out), "--metric", "euclidean",
                   "--landmarks", "0", "--baselines", "2"])
    assert rc == 0, capsys.readouterr().err
    result = json.loads((out / "topology.json").read_text())
    assert result["shape"] == [150, 20]
    h1 = result["persistence"]["summary"]["H1"]
    assert h1["max_persistence"] > 1.0  # the circle's bar (radius 1)
    assert result["persistence"]["exact"] and result["persistence"]["n_points"] == 150
    assert result["gaussian_comparison"]["H1"]["max_persistence"] == h1["max_persistence"]
    assert len(result["gaussian_comparison"]["H1"]["baseline_max_persistence"]) == 2
    assert result["mapper"]["statistics"]["n_nodes"] > 0 and result["mapper"]["statistics"]["n_components"] >= 1
    html = (out / "mapper.html").read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    assert (out / "persistence" / "diagrams.json").exists() and (out / "persistence.png").stat().st_size > 0
    assert "persistence H1:" in capsys.readouterr().out


def test_topology_command_reads_safetensors_and_sae_directories(tmp_path, capsys):
    import json

    import numpy as np
    from safetensors.numpy import save_file

    w = _noisy_circle(n=80, d=12)
    sae_dir = tmp_path / "sae"
    sae_dir.mkdir()
    save_file({"W_dec": w, "W_enc": w.T.copy(), "b_dec": np.zeros(12, np.float32)}, str(sae_dir / "sae_weights.safetensors"))
    rc = cli.main(["topology", str(sae_dir), "--out", str(tmp_path / "o1"), "--no-mapper", "--baselines", "0"])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "o1" / "topology.json").read_text())["shape"] == [80, 12]  # W_dec, not W_enc
    rc = cli.main(["topology", str(sae_dir / "sae_weights.safetensors"), "--key", "W_enc", "--out",
                   str(tmp_path / "o2"), "--no-mapper", "--no-persistence"])
    assert rc == 0 and json.loads((tmp_path / "o2" / "topology.json").read_text())["shape"] == [12, 80]
    capsys.readouterr()
    rc = cli.main(["topology", str(sae_dir / "sae_weights.safetensors"), "--key", "nope", "--out", str(tmp_path / "o3")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "key must name one of the tensors" in err and "W_dec" in err


def test_topology_command_bad_inputs(tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "vec.npy", np.ones(5, np.float32))
    (tmp_path / "w.txt").write_text("1 2 3")
    cases = [
        ([str(tmp_path / "missing.npy")], "does not exist"),
        ([str(tmp_path / "obj.npy")], "pickled objects are refused"),
        ([str(tmp_path / "vec.npy")], "must be 2-D"),
        ([str(tmp_path / "w.txt")], "must end in .npy or .safetensors"),
        ([str(tmp_path / "vec.npy"), "--landmarks", "-1"], "--landmarks must be >= 0"),
    ]
    for argv, message in cases:
        rc = cli.main(["topology", *argv, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "\n" not in err and message in err, (argv, err)


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0", "validate", "embedded"], "--threads must be >= 1, got 0"),
    (["--threads", "100000", "topology", "x.npy", "--out", "o"], "--threads must be at most 1024"),
    (["validate", "."], "."),  # a directory given as a recipe
])
def test_user_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_internal_error_is_one_line_with_a_pointer_to_debug(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.COMMANDS, "info", ("print the version", lambda p: None, broken))
    assert cli.main(["info"]) == 3
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["--debug", "info"])


def test_open_prints_the_report_path_where_there_is_no_browser(tmp_path, capsys, monkeypatch):
    import webbrowser

    def no_browser(*args, **kwargs):
        raise webbrowser.Error("no browser")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    report = tmp_path / "run" / "report" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html></html>")
    capsys.readouterr()
    assert main(["open", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out.strip() == str(report.resolve())
    assert main(["open", str(tmp_path / "nothing")]) == 2
    assert "holds no report" in capsys.readouterr().err


@pytest.mark.parametrize("precision, code", [(0.9, 0), (0.5, 1)])
def test_synthetic_exits_1_when_a_requested_check_fails(monkeypatch, capsys, precision, code):
    from types import SimpleNamespace

    from featgeom_tda.pipeline import selfcheck_sweep

    def fake_check(*, on_card=None, **kwargs):
        on_card(SimpleNamespace(precision=precision, recall=0.95))
        return "scorecard"

    monkeypatch.setattr(selfcheck_sweep, "run_synthetic_check", fake_check)
    capsys.readouterr()
    assert main(["synthetic", "--min-precision", "0.8", "--min-recall", "0.9"]) == code
    err = capsys.readouterr().err
    assert (code == 1) == ("check failed: precision 0.500 < 0.8" in err)


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for code in ("0  done", "1  a check", "2  a user error", "3  an internal error"):
        assert code in out


def test_synthetic_crosscoder_prints_the_ground_truth_table(monkeypatch, capsys):
    """The table itself is scored in tests/analyses/test_crosscoder_truth.py; here: the command prints it."""
    from featgeom_tda.pipeline import crosscoder_check

    nan = float("nan")
    row = {"shared_fraction": 0.5, "n_seeds": 1, "split": 0.0, "flagged": 1.0, "flagged_on_shared": 0.0,
           "fvu_a": 0.02, "fvu_b": 0.03,
           "crosscoder": {"precision_shared": 0.92, "recall_shared": 1.0, "precision_exclusive": 1.0, "recall_exclusive": 0.79},
           "matching": {"precision_shared": 1.0, "recall_shared": 1.0, "precision_exclusive": 0.96, "recall_exclusive": nan}}
    monkeypatch.setattr(crosscoder_check, "crosscoder_truth_rows", lambda **kw: [row])
    capsys.readouterr()
    assert main(["synthetic", "--crosscoder"]) == 0
    out = capsys.readouterr().out
    assert "| 0.50 | 0.92 / 1.00 | 1.00 / 0.79 | 0.0 | 1 (0) | 0.02/0.03 | 1.00 / 1.00 | 0.96 / n/a |" in out
