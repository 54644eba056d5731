"""Files and records -> documents: txt, md, pdf (text layer), json and jsonl records.

A document id is what makes ingest idempotent: a file's path relative to the folder
being ingested (or its name when a single file is given), or a record's id field.
JSON may be a list of records, `{"records"|"data"|"documents": [...]}`, or an object
mapping ids to texts (e.g. the criminal-law articles keyed "article-paragraph-item").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LoadError

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
RECORD_SUFFIXES = {".json", ".jsonl"}
SUFFIXES = TEXT_SUFFIXES | RECORD_SUFFIXES | {".pdf"}
TEXT_FIELDS = ("text", "content", "body", "document", "page_content", "fact", "passage")


@dataclass
class Document:
    id: str
    text: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """What decides whether a re-ingested document changed (text and metadata)."""
        blob = json.dumps([self.text, self.metadata], sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LoadError(f"{path}: not UTF-8 text") from None


def read_pdf(path: Path) -> str:
    """The PDF's text layer, pages joined by blank lines (scanned PDFs without one give no text)."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise LoadError(f"{path}: reading PDF needs pypdf (pip install 'evalctl[rag]')") from None
    try:
        reader = PdfReader(str(path))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
        raise LoadError(f"{path}: unreadable PDF ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") \
            from None


def _scalar_metadata(rec: dict, skip: set[str]) -> dict[str, Any]:
    """Chroma metadata takes str/int/float/bool only; lists are joined, other values dropped."""
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if key in skip or value is None:
            continue
        if isinstance(value, (str, int, float, bool)):
            out[key] = value
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            out[key] = ",".join(str(v) for v in value)
    return out


def record_document(rec: Any, where: str, source: str, id_field: str, text_field: str | None) -> Document:
    if not isinstance(rec, dict):
        raise LoadError(f"{where}: expected a JSON object with an {id_field!r} field")
    if rec.get(id_field) in (None, ""):
        raise LoadError(f"{where}: record has no {id_field!r} field (set --id-field)")
    names = (text_field,) if text_field else TEXT_FIELDS
    key = next((n for n in names if isinstance(rec.get(n), str)), None)
    if key is None:
        raise LoadError(f"{where}: record has no text field (tried {', '.join(names)}; set --text-field)")
    meta = _scalar_metadata(rec, {id_field, key})
    return Document(str(rec[id_field]), rec[key], source, meta)


def _json_records(path: Path, id_field: str) -> tuple[list[Any], bool]:
    """(records, is_jsonl); an id -> text object becomes records with `id`/`text`."""
    text = read_text(path)
    if path.suffix == ".jsonl":
        records = []
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LoadError(f"{path}:{i + 1}: not valid JSON ({e.msg})") from None
        return records, True
    try:
        data = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as e:
        raise LoadError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, dict):
        for key in ("records", "data", "documents"):
            if isinstance(data.get(key), list):
                return data[key], False
        if data and all(isinstance(v, str) for v in data.values()):
            return [{id_field: k, "text": v} for k, v in data.items()], False
        return [data], False
    if isinstance(data, list):
        return data, False
    raise LoadError(f"{path}: expected a list of records or an object")


def load_records(path: Path, id_field: str = "id", text_field: str | None = None) -> list[Document]:
    records, jsonl = _json_records(path, id_field)
    docs = []
    for i, rec in enumerate(records):
        where = f"{path}:{i + 1}" if jsonl else f"{path}[{i}]"
        docs.append(record_document(rec, where, str(path), id_field, text_field))
    return docs


def load_file(path: Path, doc_id: str, id_field: str = "id", text_field: str | None = None) -> list[Document]:
    suffix = path.suffix.lower()
    if suffix in RECORD_SUFFIXES:
        return load_records(path, id_field, text_field)
    text = read_pdf(path) if suffix == ".pdf" else read_text(path)
    return [Document(doc_id, text, str(path), {"file_type": suffix.lstrip(".")})]


def load_path(path: Path, id_field: str = "id", text_field: str | None = None) -> list[Document]:
    """Every document under `path` (a file or a folder searched recursively for known suffixes).
    Duplicate ids are refused: they would silently overwrite each other's chunks."""
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        pairs = [(f, f.relative_to(path).as_posix()) for f in files]
    else:
        if path.suffix.lower() not in SUFFIXES:
            raise LoadError(f"{path}: unsupported file type (use {', '.join(sorted(SUFFIXES))})")
        pairs = [(path, path.name)]
    docs: list[Document] = []
    for f, doc_id in pairs:
        docs.extend(load_file(f, doc_id, id_field, text_field))
    seen: dict[str, str] = {}
    for d in docs:
        if d.id in seen:
            raise LoadError(f"duplicate document id {d.id!r} (in {seen[d.id]} and {d.source})")
        seen[d.id] = d.source
    return docs
