"""Ingest, persistence and the two Chroma locations (embedded store, real `chroma run` server),
through the `evalctl rag` commands. Lexical-only collections (`--embedder none`): no model needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.chunking import chunk_text
from rag.store import Store, StoreConfig

from .conftest import assert_one_line_error, run_cli

REPO = Path(__file__).resolve().parents[2]
LONG = " ".join(f"Sentence number {i} is about theft of item {i}." for i in range(60))


def write_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "theft.txt").write_text("Theft of a phone is punished by prison. 盗窃手机的，处三年以下有期徒刑。",
                                    encoding="utf-8")
    (root / "traffic.md").write_text("# Traffic\n\nDrunk driving is dangerous driving.", encoding="utf-8")
    (root / "long.txt").write_text(LONG, encoding="utf-8")
    (root / "empty.txt").write_text("", encoding="utf-8")
    (root / "cases.jsonl").write_text(json.dumps({"id": "case-1", "text": "A case about fraud and forgery."}) + "\n",
                                      encoding="utf-8")
    return root


def ingest(path, *more, store=("--chroma-path",), collection="docs"):
    return run_cli("rag", "ingest", path, "--collection", collection, "--embedder", "none", "--no-progress",
                   *store, *more)


def chunk_ids(store: Store, name: str) -> set[str]:
    return set(store.records(store.get(name), include=())["ids"])


def test_telemetry_is_off_for_both_clients(tmp_path, chroma_server):
    for cfg in (StoreConfig(path=tmp_path / "db"), StoreConfig(url=chroma_server)):
        assert Store(cfg).client.get_settings().anonymized_telemetry is False


def test_ingest_is_idempotent_and_replaces_changed_documents(tmp_path):
    corpus, db = write_corpus(tmp_path / "corpus"), tmp_path / "db"
    first = ingest(corpus, store=("--chroma-path", db))
    assert first.exit_code == 0, first.output
    assert "5 documents: 4 new, 0 changed, 0 unchanged, 1 empty" in first.output
    store = Store(StoreConfig(path=db))
    before = chunk_ids(store, "docs")
    n_long = sum(1 for i in before if i.startswith("long.txt#"))
    assert n_long == len(chunk_text(LONG)) > 1
    assert {"theft.txt#0", "traffic.md#0", "case-1#0"} <= before

    again = ingest(corpus, store=("--chroma-path", db))
    assert "0 new, 0 changed, 4 unchanged" in again.output and "0 chunks added, 0 removed" in again.output
    assert chunk_ids(store, "docs") == before

    (corpus / "long.txt").write_text("Now a short text about robbery.", encoding="utf-8")
    (corpus / "new.txt").write_text("A new document about bribery.", encoding="utf-8")
    changed = ingest(corpus, store=("--chroma-path", db))
    assert "1 new, 1 changed, 3 unchanged" in changed.output
    assert f"2 chunks added, {n_long} removed" in changed.output
    after = chunk_ids(store, "docs")
    assert {i for i in after if i.startswith("long.txt#")} == {"long.txt#0"}
    assert "new.txt#0" in after
    hits = run_cli("rag", "search", "robbery", "--collection", "docs", "--chroma-path", db, "--k", "1", "--json")
    assert json.loads(hits.output)["text"] == "Now a short text about robbery."

    rechunked = ingest(corpus, "--chunk-size", "40", "--chunk-overlap", "5", store=("--chroma-path", db))
    assert "0 unchanged" in rechunked.output  # other chunking settings: every document is re-chunked
    assert len(chunk_ids(store, "docs")) > len(after)


def cli_subprocess(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "evalctl.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=180, cwd=REPO)


def test_collection_persists_across_process_restarts(tmp_path):
    corpus, db = write_corpus(tmp_path / "corpus"), tmp_path / "db"
    first = cli_subprocess("rag", "ingest", corpus, "--collection", "kept", "--embedder", "none", "--no-progress",
                           "--chroma-path", db)
    assert first.returncode == 0, first.stderr
    listed = cli_subprocess("rag", "ls", "--chroma-path", db)
    assert f"kept  4 documents  {3 + len(chunk_text(LONG))} chunks  none" in listed.stdout, listed.stdout
    found = cli_subprocess("rag", "search", "盗窃手机", "--collection", "kept", "--chroma-path", db, "--k", "1",
                           "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["id"] == "theft.txt#0"
    again = cli_subprocess("rag", "ingest", corpus, "--collection", "kept", "--no-progress", "--chroma-path", db)
    assert "4 unchanged" in again.stdout, again.stdout + again.stderr  # the embedder came from the collection


def test_chroma_server_path(tmp_path, chroma_server):
    corpus = write_corpus(tmp_path / "corpus")
    server = ("--chroma-url", chroma_server, "--chroma-path", tmp_path / "unused")
    first = ingest(corpus, store=server, collection="served")
    assert first.exit_code == 0, first.output
    assert "4 new" in first.output and chroma_server in first.output
    assert "4 unchanged" in ingest(corpus, store=server, collection="served").output
    hits = run_cli("rag", "search", "drunk driving", "--collection", "served", *server, "--k", "2", "--json")
    assert json.loads(hits.output.splitlines()[0])["id"] == "traffic.md#0"
    listed = run_cli("rag", "ls", *server)
    assert "served  4 documents" in listed.output
    assert not (tmp_path / "unused").exists()  # nothing went to the embedded store
    # a fresh client (as another process would) sees the same data on the server
    assert "theft.txt#0" in chunk_ids(Store(StoreConfig(url=chroma_server)), "served")
    assert run_cli("rag", "drop", "served", *server).exit_code == 0
    assert_one_line_error(run_cli("rag", "search", "x", "--collection", "served", *server), "no collection 'served'")


@pytest.mark.parametrize("args,fragments", [
    (["rag", "search", "q", "--collection", "missing"], ["no collection 'missing'", "there are none yet"]),
    (["rag", "ask", "q", "--collection", "missing", "--model", "m"], ["no collection 'missing'"]),
    (["rag", "drop", "missing"], ["no collection 'missing'"]),
    (["rag", "search", "q", "--collection", "ab"], ["bad collection name 'ab'", "3-512 characters"]),
    (["rag", "search", "q", "--collection", "-bad-"], ["bad collection name"]),
    (["rag", "ls", "--chroma-url", "http://127.0.0.1:9"], ["cannot reach the Chroma server at http://127.0.0.1:9"]),
    (["rag", "search", "q", "--collection", "abc", "--chroma-url", "http://127.0.0.1:9"], ["cannot reach"]),
    (["rag", "ingest", "nope", "--collection", "abc", "--embedder", "none"], ["nope: no such file"]),
    (["rag", "ingest", ".", "--collection", "abc", "--embedder", "bogus"], ["bad embedder 'bogus'"]),
    (["rag", "ingest", ".", "--collection", "abc", "--chunk-size", "10", "--chunk-overlap", "10"],
     ["--chunk-overlap (10) must be smaller"]),
    (["rag", "eval", "--collection", "abc", "--questions", "nope.jsonl"], ["cannot read questions"]),
])
def test_bad_input_gives_one_line_errors(tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("text")
    assert_one_line_error(run_cli(*args, "--chroma-path", tmp_path / "db"), *fragments)


def test_default_embedder_offline_is_a_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("text")
    result = run_cli("rag", "ingest", tmp_path / "a.txt", "--collection", "abc", "--chroma-path", tmp_path / "db",
                     env={"HF_HUB_OFFLINE": "1"})
    assert_one_line_error(result, "BAAI/bge-base-en-v1.5", "--embedder endpoint:MODEL")


def test_dense_on_a_lexical_collection_and_embedder_mismatch(tmp_path):
    db = tmp_path / "db"
    assert ingest(write_corpus(tmp_path / "c"), store=("--chroma-path", db)).exit_code == 0
    assert_one_line_error(run_cli("rag", "search", "q", "--collection", "docs", "--mode", "dense",
                                  "--chroma-path", db), "no dense vectors")
    assert_one_line_error(run_cli("rag", "ingest", tmp_path / "c", "--collection", "docs", "--embedder",
                                  "endpoint:x", "--chroma-path", db), "was embedded with none")
