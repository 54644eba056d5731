"""Files API: upload validation on strings first, then the official SDK against the real
server (upload, list, retrieve, content, delete), then bad files and bad requests."""

from __future__ import annotations

import io
import json

import openai
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.errors import BadRequest
from server.jobs.files import check_for_method, inspect_file
from server.jobs.spec import resolve_hyper
from server.jobs.store import Store
from server.settings import ServeSettings
from trainers.errors import DataError

MESSAGES = {"messages": [{"role": "user", "content": "Ann has 2 pens and buys 3. How many?"},
                         {"role": "assistant", "content": "<answer> 5 </answer>"}]}
GOOD = {
    "alpaca": {"instruction": "Add 2 and 3", "input": "", "output": "5"},
    "sharegpt": {"conversations": [{"from": "human", "value": "2+3?"}, {"from": "gpt", "value": "5"}]},
    "messages": MESSAGES,
    "prompt": {"prompt": "2+3=", "completion": "5"},
    "preference": {"prompt": "2+3=", "chosen": "5", "rejected": "6"},
}
# (lines, text the 400 must contain): each names the file and the first bad line
BAD = {
    "malformed-json": ([json.dumps(MESSAGES), "{not json"], "line 2: malformed JSON"),
    "unknown-format": ([json.dumps(MESSAGES), json.dumps(MESSAGES), json.dumps({"text": "hi"})], "line 3: not an"),
    "mixed-formats": ([json.dumps(MESSAGES), json.dumps(GOOD["alpaca"])], "line 2: a alpaca record in a messages"),
    "no-assistant-reply": ([json.dumps(MESSAGES), json.dumps({"messages": [{"role": "user", "content": "hi"}]})],
                           "line 2: needs a prompt and an assistant reply"),
    "reinforcement-answered": ([json.dumps({"messages": [{"role": "user", "content": "hi"}]}), json.dumps(MESSAGES)],
                               "line 2: the last message of a reinforcement record must be the user's"),
    "bad-weight": ([json.dumps({**GOOD["alpaca"], "weight": -1})], "line 1: `weight` must be"),
    "preference-missing-rejected": ([json.dumps(GOOD["preference"]), json.dumps({"prompt": "x", "chosen": "y"})],
                                    "line 2: a preference record needs"),
    "empty": ([""], "no records"),
}


def jsonl(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


# -- pure validation ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", sorted(GOOD))
def test_inspect_detects_each_format(tmp_path, fmt):
    path = tmp_path / "x.jsonl"
    path.write_bytes(jsonl([json.dumps(GOOD[fmt])] * 3))
    assert inspect_file(path, "train.jsonl") == (fmt, 3)


@pytest.mark.parametrize("case", sorted(BAD))
def test_inspect_names_the_file_and_first_bad_line(tmp_path, case):
    lines, expected = BAD[case]
    path = tmp_path / "upload-123.jsonl"
    path.write_bytes(jsonl(lines))
    with pytest.raises(DataError) as e:
        inspect_file(path, "mine.jsonl")
    assert expected in str(e.value)
    assert str(e.value).startswith("mine.jsonl") and str(path) not in str(e.value)


def test_method_needs_matching_records():
    assert check_for_method("messages", "supervised", "training_file") is None
    assert check_for_method("preference", "dpo", "training_file") is None
    assert "preference pairs" in check_for_method("alpaca", "dpo", "training_file")
    assert "method dpo" in check_for_method("preference", "supervised", "validation_file")


def test_prompt_only_records_are_for_reinforcement_jobs_only(tmp_path):
    """A file whose first record ends in a user turn is an RFT file (OpenAI's shape): accepted at
    upload, refused for supervised and DPO jobs, and the only kind a reinforcement job takes."""
    path = tmp_path / "upload-1.jsonl"
    path.write_bytes(jsonl([json.dumps({"messages": [{"role": "user", "content": "2+3?"}], "answer": "5"})] * 2))
    assert inspect_file(path, "rft.jsonl") == ("reinforcement", 2)
    assert "use method reinforcement" in check_for_method("reinforcement", "supervised", "training_file")
    assert "use method reinforcement" in check_for_method("reinforcement", "dpo", "training_file")
    assert check_for_method("reinforcement", "reinforcement", "training_file") is None
    assert "ending in a user turn" in check_for_method("messages", "reinforcement", "training_file")


def test_auto_hyperparameters_resolve_and_rank_is_capped():
    h = resolve_hyper("supervised", {}, records=2, max_rank=8)
    assert h == {"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 1.0, "lora_rank": 8, "lora_alpha": 16.0,
                 "max_steps": None, "max_length": 1024, "checkpoint_steps": 50}
    d = resolve_hyper("dpo", {"beta": 0.3, "batch_size": 1, "n_epochs": 2, "lora_rank": 4}, records=10, max_rank=8)
    assert (d["beta"], d["batch_size"], d["n_epochs"], d["lora_rank"], d["lora_alpha"]) == (0.3, 1, 2, 4, 8.0)
    with pytest.raises(BadRequest) as e:
        resolve_hyper("dpo", {"lora_rank": 32}, records=10, max_rank=8)
    assert e.value.param == "method.dpo.hyperparameters.lora_rank"


def test_store_pages_newest_first_with_cursor(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    for i in range(5):
        store.add_file(f"file-{i}", f"f{i}.jsonl", 10, "fine-tune", tmp_path / f"{i}", "messages", 1)
    page, more = store.list_files(None, 2, "desc", None)
    assert [r["id"] for r in page] == ["file-4", "file-3"] and more
    page, more = store.list_files("file-3", 10, "desc", None)
    assert [r["id"] for r in page] == ["file-2", "file-1", "file-0"] and not more
    page, _ = store.list_files("file-1", 10, "asc", None)
    assert [r["id"] for r in page] == ["file-2", "file-3", "file-4"]


def test_upload_size_limit_is_413_in_the_app(tmp_path):
    """The real app in-process (no engine needed for files): a body over max_file_bytes is refused."""
    settings = ServeSettings(jobs_dir=tmp_path / "jobs", max_file_bytes=2000)
    with TestClient(create_app(settings)) as client:
        small = client.post("/v1/files", data={"purpose": "fine-tune"},
                            files={"file": ("ok.jsonl", jsonl([json.dumps(MESSAGES)] * 5))})
        assert small.status_code == 200, small.text
        big = client.post("/v1/files", data={"purpose": "fine-tune"},
                          files={"file": ("big.jsonl", jsonl([json.dumps(MESSAGES)] * 40))})
        assert big.status_code == 413
        assert big.json()["error"]["param"] == "file" and "2000" in big.json()["error"]["message"]
        assert [f["filename"] for f in client.get("/v1/files").json()["data"]] == ["ok.jsonl"]
        assert list((tmp_path / "jobs" / "files").iterdir()) == [tmp_path / "jobs" / "files" /
                                                                  f"{small.json()['id']}.jsonl"]


# -- the SDK against the real server -------------------------------------------------------------
@pytest.fixture(scope="module")
def admin(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.admin_key, max_retries=0)


def test_sdk_upload_list_retrieve_content_delete(admin):
    data = jsonl([json.dumps(MESSAGES)] * 4)
    f = admin.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune")
    assert f.id.startswith("file-") and f.object == "file" and f.bytes == len(data)
    assert (f.filename, f.purpose, f.status) == ("train.jsonl", "fine-tune", "processed")
    assert f.model_extra == {"format": "messages", "records": 4}
    assert admin.files.retrieve(f.id).id == f.id
    assert f.id in [x.id for x in admin.files.list(purpose="fine-tune")]
    assert admin.files.content(f.id).read() == data
    deleted = admin.files.delete(f.id)
    assert deleted.deleted and deleted.id == f.id
    with pytest.raises(openai.NotFoundError):
        admin.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        admin.files.delete(f.id)


def test_sdk_list_paginates(admin):
    ids = [admin.files.create(file=(f"p{i}.jsonl", io.BytesIO(jsonl([json.dumps(GOOD["prompt"])]))),
                              purpose="fine-tune").id for i in range(3)]
    page = admin.files.list(limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2] and page.has_more
    walked = [f.id for f in admin.files.list(limit=2)]  # the SDK follows `after` through every page
    assert walked[:3] == ids[::-1]


@pytest.mark.parametrize("case", sorted(BAD))
def test_sdk_bad_file_is_400_naming_the_line(admin, case):
    lines, expected = BAD[case]
    with pytest.raises(openai.BadRequestError) as e:
        admin.files.create(file=(f"{case}.jsonl", io.BytesIO(jsonl(lines))), purpose="fine-tune")
    err = e.value.body
    assert err["param"] == "file" and err["code"] == "invalid_file"
    assert expected in err["message"] and f"{case}.jsonl" in err["message"]
    assert f"{case}.jsonl" not in [f.filename for f in admin.files.list()]


def test_sdk_wrong_purpose_and_missing_file(admin, gateway):
    with pytest.raises(openai.BadRequestError) as e:
        admin.files.create(file=("x.jsonl", io.BytesIO(jsonl([json.dumps(MESSAGES)]))), purpose="batch")
    assert e.value.body["param"] == "purpose"
    with gateway.admin() as http:
        r = http.post("/v1/files", data={"purpose": "fine-tune"}, files={"other": ("x", b"{}")})
        assert r.status_code == 400 and r.json()["error"]["param"] == "file"
        r = http.post("/v1/files", json={"purpose": "fine-tune"})
        assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]


def test_files_need_the_admin_key(gateway):
    with pytest.raises(openai.PermissionDeniedError):
        gateway.openai().files.list()
    anon = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anon.files.create(file=("x.jsonl", io.BytesIO(b"{}")), purpose="fine-tune")
