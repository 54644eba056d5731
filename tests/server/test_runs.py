"""The results API (/v1/evalctl/runs, samples, compare) and the web page's static files, on the
real app with no engine behind it (these endpoints only read the results directory)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from evaluators.compare import compare_runs
from evaluators.runner import default_out_dir
from server.app import create_app
from server.lifecycle import Runtime
from server.settings import ServeSettings

from .rundirs import write_run

KEY = {"Authorization": "Bearer k"}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    write_run(root / "base", "base", [0, 9, None, 9])          # all wrong; one without the format
    write_run(root / "sft", "sft", [3, 4, 5, 6], error_at=3)  # all right, one engine error recorded
    write_run(root / "demo" / "grpo", "grpo", [3, 4, 9, 6])
    write_run(root / "unfinished", "sft", [3, 4], finish=False)
    (root / "merged-model").mkdir()  # a model dir has a config.json too, and is no run
    (root / "merged-model" / "config.json").write_text('{"model_type": "qwen2"}')
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    write_run(root / ".hidden", "x", [1])
    return root


@pytest.fixture(scope="module")
def client(results, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    settings = ServeSettings(api_key="k", results_dir=results, adapter_store=store, jobs_dir=store / "jobs")
    with TestClient(create_app(settings, runtime=Runtime(settings))) as c:
        yield c


def test_default_results_dir_is_evalctl_runs_default():
    assert ServeSettings().results_dir == default_out_dir("gsm8k", "m").parent


def test_runs_listed_with_their_summaries(client, results):
    body = client.get("/v1/evalctl/runs", headers=KEY).json()
    assert body["results_dir"] == str(results.resolve())
    runs = {r["id"]: r for r in body["data"]}
    assert list(runs) == ["base", "demo/grpo", "sft", "unfinished"]  # no hidden dirs, no plain folders
    assert runs["base"]["metrics"]["accuracy"]["mean"] == 0.0
    assert runs["sft"]["metrics"]["accuracy"]["mean"] == 1.0
    assert runs["demo/grpo"]["metrics"]["accuracy"]["mean"] == 0.75
    assert runs["sft"]["num_failed"] == 1 and runs["sft"]["primary"] == "avg_reward"
    assert runs["unfinished"] == {**runs["unfinished"], "complete": False, "num_examples": 2, "metrics": {}}


def test_run_summary_and_samples(client, results):
    s = client.get("/v1/evalctl/runs/demo/grpo", headers=KEY).json()
    assert s["complete"] and s["model"] == "grpo" and s["by_category"]["small"]["accuracy"] == 1.0
    page = client.get("/v1/evalctl/runs/demo/grpo/samples", params={"offset": 1, "limit": 2}, headers=KEY).json()
    assert (page["total"], page["offset"], [r["id"] for r in page["data"]]) == (4, 1, ["q1", "q2"])
    assert page["data"][1]["scores"]["answer_reward"] == 0.0  # q2 guessed 9, not 5
    hits = client.get("/v1/evalctl/runs/sft/samples", params={"q": "buys 3 more", "limit": 1}, headers=KEY).json()
    assert hits["total"] == 4 and len(hits["data"]) == 1
    errors = client.get("/v1/evalctl/runs/sft/samples", params={"errors": "true"}, headers=KEY).json()
    assert [r["id"] for r in errors["data"]] == ["q3"] and errors["data"][0]["error"] == "engine timed out"
    partial = client.get("/v1/evalctl/runs/unfinished", headers=KEY).json()
    assert partial["complete"] is False and partial["config"]["model"] == "sft"


def test_compare_is_evalctl_compare(client, results):
    body = client.get("/v1/evalctl/compare", params={"runs": "base,sft", "metrics": "accuracy,format_rate",
                                                      "resamples": 1000}, headers=KEY).json()
    direct = compare_runs([results / "base", results / "sft"], ["accuracy", "format_rate"], resamples=1000)
    assert [r["metrics"] for r in body["runs"]] == [r["metrics"] for r in direct["runs"]]
    assert [r["id"] for r in body["runs"]] == ["base", "sft"] and body["baseline"] == "base"
    assert body["runs"][1]["metrics"]["accuracy"]["delta"] == 1.0


@pytest.mark.parametrize("path,params,status,code,param", [
    ("/v1/evalctl/runs/nope", {}, 404, "run_not_found", "run_id"),
    ("/v1/evalctl/runs/nope/samples", {}, 404, "run_not_found", "run_id"),
    ("/v1/evalctl/runs/notes", {}, 404, "run_not_found", "run_id"),            # a folder, not a run
    ("/v1/evalctl/runs/demo/%2E%2E/%2E%2E/etc", {}, 404, "run_not_found", "run_id"),
    ("/v1/evalctl/runs/.hidden", {}, 404, "run_not_found", "run_id"),               # not listed, not served
    ("/v1/evalctl/runs/sft/samples", {"limit": 0}, 400, "invalid_value", "limit"),
    ("/v1/evalctl/runs/sft/samples", {"offset": "x"}, 400, "invalid_value", "offset"),
    ("/v1/evalctl/compare", {}, 400, "invalid_value", "runs"),
    ("/v1/evalctl/compare", {"runs": " , "}, 400, "invalid_request", "runs"),
    ("/v1/evalctl/compare", {"runs": "base,unfinished"}, 400, "invalid_request", "runs"),
    ("/v1/evalctl/compare", {"runs": "base,sft", "metrics": "acuracy"}, 400, "invalid_request", "metrics"),
    ("/v1/evalctl/compare", {"runs": "base,ghost"}, 404, "run_not_found", "run_id"),
])
def test_bad_requests_get_openai_errors(client, path, params, status, code, param):
    r = client.get(path, params=params, headers=KEY)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == (code, param) and err["message"]


def test_metric_typo_gets_a_suggestion(client):
    r = client.get("/v1/evalctl/compare", params={"runs": "base,sft", "metrics": "acuracy"}, headers=KEY)
    assert "did you mean accuracy" in r.json()["error"]["message"]


def test_results_need_the_key(client):
    assert client.get("/v1/evalctl/runs").status_code == 401
    assert client.get("/v1/evalctl/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_corrupt_run_is_reported_not_fatal(tmp_path):
    write_run(tmp_path / "good", "m", [3])
    write_run(tmp_path / "bad", "m", [3])
    (tmp_path / "bad" / "summary.json").write_text("{not json")
    write_run(tmp_path / "odd", "m", [3])
    odd = json.loads((tmp_path / "odd" / "summary.json").read_text())
    (tmp_path / "odd" / "summary.json").write_text(json.dumps({**odd, "num_examples": "many"}))
    settings = ServeSettings(results_dir=tmp_path, adapter_store=tmp_path / "store", jobs_dir=tmp_path / "jobs")
    with TestClient(create_app(settings, runtime=Runtime(settings))) as c:
        assert [r["id"] for r in c.get("/v1/evalctl/runs").json()["data"]] == ["good"]
        r = c.get("/v1/evalctl/runs/bad")
        assert r.status_code == 422 and r.json()["error"]["code"] == "run_unreadable"
        assert c.get("/v1/evalctl/runs/odd").status_code == 200  # the summary as it is on disk
        missing = ServeSettings(results_dir=tmp_path / "absent", adapter_store=tmp_path / "store2",
                                jobs_dir=tmp_path / "jobs2")
    with TestClient(create_app(missing, runtime=Runtime(missing))) as c:
        assert c.get("/v1/evalctl/runs").json()["data"] == []


# -- the page's files ----------------------------------------------------------------------
UI_DIR = Path(__file__).resolve().parents[2] / "server" / "ui"


def test_page_is_public_with_a_strict_csp(client):
    r = client.get("/ui/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_every_file_the_page_loads_is_served(client):
    """index.html's scripts and styles, and every module they import, come from the gateway itself."""
    html = client.get("/ui/").text
    todo = re.findall(r'(?:src|href)="([\w.-]+\.(?:js|css))"', html)
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        r = client.get(f"/ui/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].startswith("text/javascript" if name.endswith(".js") else "text/css")
        todo += re.findall(r'from "\./([\w.-]+\.js)"', r.text)
    assert seen == {p.name for p in UI_DIR.iterdir() if p.suffix in (".js", ".css")}
    for p in UI_DIR.iterdir():  # offline clusters: nothing from a CDN
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", p.read_text()), p.name


@pytest.mark.parametrize("name", ["nope.js", "app.py", ".hidden.js", "..%2Frouters%2Fui.py", "%2E%2E%2Fapp.py"])
def test_only_page_files_are_served(client, name):
    r = client.get(f"/ui/{name}")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
