"""Document loading from files: txt, md, pdf, json, jsonl; ids; errors."""

import json

import pytest

from rag.errors import LoadError
from rag.loaders import load_path


def make_pdf(path, lines):
    """A minimal one-page PDF with a text layer (Helvetica), xref offsets computed."""
    stream = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({t}) Tj 0 -16 Td" for t in lines) + " ET"
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            "/Resources << /Font << /F1 5 0 R >> >> >>",
            f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "notes.txt").write_text("Plain text about theft.", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "guide.md").write_text("# Guide\n\n中文内容。", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "recs.jsonl").write_text(
        json.dumps({"id": "r1", "text": "first", "year": 2016, "tags": ["a", "b"], "nested": {"x": 1}}) + "\n\n"
        + json.dumps({"id": 2, "content": "second"}) + "\n", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "skip.txt").write_text("not me")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    make_pdf(tmp_path / "doc.pdf", ["Hello PDF world", "Second line"])
    return tmp_path


def test_folder_loads_every_known_file_with_stable_ids(folder):
    docs = {d.id: d for d in load_path(folder)}
    assert set(docs) == {"notes.txt", "sub/guide.md", "empty.txt", "r1", "2", "doc.pdf"}
    assert docs["sub/guide.md"].text.endswith("中文内容。")
    assert docs["empty.txt"].text == ""
    assert "Hello PDF world" in docs["doc.pdf"].text and "Second line" in docs["doc.pdf"].text
    assert docs["r1"].metadata == {"year": 2016, "tags": "a,b"}  # scalars kept, lists joined, dicts dropped
    assert docs["2"].text == "second"


def test_single_file_id_is_its_name(folder):
    [doc] = load_path(folder / "sub" / "guide.md")
    assert doc.id == "guide.md"


def test_json_object_of_id_to_text(tmp_path):
    p = tmp_path / "articles.json"
    p.write_text(json.dumps({"264-0-0": "【盗窃罪】盗窃公私财物", "133-1-0": "【危险驾驶罪】"}, ensure_ascii=False))
    assert [(d.id, d.text) for d in load_path(p)] == [("264-0-0", "【盗窃罪】盗窃公私财物"), ("133-1-0", "【危险驾驶罪】")]


def test_json_list_and_custom_fields(tmp_path):
    p = tmp_path / "cases.json"
    p.write_text(json.dumps({"records": [{"case": "c1", "fact": "facts here"}]}))
    [doc] = load_path(p, id_field="case")
    assert (doc.id, doc.text) == ("c1", "facts here")
    [doc] = load_path(p, id_field="case", text_field="fact")
    assert doc.text == "facts here"


def test_sha_changes_with_text_and_metadata(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps({"id": "x", "text": "t", "m": 1}) + "\n")
    a = load_path(p)[0].sha256
    p.write_text(json.dumps({"id": "x", "text": "t", "m": 2}) + "\n")
    b = load_path(p)[0].sha256
    p.write_text(json.dumps({"id": "x", "text": "t2", "m": 2}) + "\n")
    assert len({a, b, load_path(p)[0].sha256}) == 3


@pytest.mark.parametrize("name,content,message", [
    ("a.jsonl", '{"id": 1, "text": "ok"}\n{broken\n', "a.jsonl:2: not valid JSON"),
    ("b.jsonl", '{"text": "no id"}\n', "has no 'id' field"),
    ("c.jsonl", '{"id": "x", "title": 3}\n', "no text field"),
    ("d.json", '[1, 2]', "expected a JSON object"),
    ("e.json", '{"a": ', "not valid JSON"),
    ("f.csv", 'a,b', "unsupported file type"),
    ("g.txt", b'\xff\xfe\x00bad', "not UTF-8"),
    ("h.pdf", b'%PDF-1.4 garbage', "unreadable PDF"),
])
def test_bad_files_give_one_line_errors(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LoadError, match=message) as e:
        load_path(p)
    assert "\n" not in str(e.value)


def test_duplicate_ids_are_refused(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "x", "text": "1"}\n')
    (tmp_path / "b.jsonl").write_text('{"id": "x", "text": "2"}\n')
    with pytest.raises(LoadError, match="duplicate document id 'x'"):
        load_path(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(LoadError, match="no such file"):
        load_path(tmp_path / "nope")
