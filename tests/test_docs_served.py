"""The README's curl examples work against the real server, as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(tag: str) -> str:
    m = re.search(rf"<!-- test: {tag} -->\s*```bash\n(.*?)```", README.read_text(), re.S)
    assert m, f"README lost its {tag} example"
    return m.group(1)


def run_block(tag: str, gateway, **env) -> str:
    script = readme_block(tag).replace("http://127.0.0.1:8000", gateway.url)
    env = {**os.environ, "EVALCTL_API_KEY": gateway.api_key, "EVALCTL_ADMIN_KEY": gateway.admin_key, **env}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_readme_curl_chat(gateway):
    body = json.loads(run_block("curl-chat", gateway))
    assert body["model"] == "tiny" and body["usage"]["completion_tokens"] == 16


def test_readme_curl_adapter(gateway):
    out = run_block("curl-adapter", gateway, ADAPTER_DIR=str(gateway.adapters["B"]))
    assert "Success" in out
    names = [a["name"] for a in json.loads(out[out.index('{"object"'):])["data"]]
    assert "sft" in names
    with gateway.admin() as admin:  # the session server is shared: leave it with the adapters it had
        assert admin.post("/v1/unload_lora_adapter", json={"lora_name": "sft"}).status_code == 200
        assert "sft" not in [a["name"] for a in admin.get("/v1/adapters").json()["data"]]


def test_readme_curl_runs(gateway):
    from tests.server.rundirs import write_run

    write_run(gateway.results_dir / "readme-run", "sft", [3, 4, 5], error_at=1)
    out = run_block("curl-runs", gateway, RUN="readme-run")
    decoder = json.JSONDecoder()
    listing, end = decoder.raw_decode(out)
    page, _ = decoder.raw_decode(out[end:].lstrip())
    assert "readme-run" in [r["id"] for r in listing["data"]]
    assert [r["id"] for r in page["data"]] == ["q1"] and page["total"] == 1
