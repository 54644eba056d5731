"""Session fixtures: a tiny model built locally, two LoRA adapters, and one real
`evalctl serve` (vLLM CPU engine + gateway) shared by every engine test."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from evalctl.process import ServerProcess
from evalctl.tiny import build_tiny_model
from server.lora_files import write_lora_adapter

API_KEY, ADMIN_KEY = "user-key", "admin-key"
ENGINE_ARGS = ["--dtype", "float32", "--max-model-len", "512", "--max-lora-rank", "8", "--max-loras", "4"]
ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}


@dataclass
class Gateway:
    url: str
    process: ServerProcess
    model_dir: Path
    adapters: dict[str, Path]
    api_key: str = API_KEY
    admin_key: str = ADMIN_KEY
    results_dir: Path | None = None  # the gateway's --results-dir (the web page's Results tab)

    def openai(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.api_key, max_retries=0, **kw)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=120)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    cached = os.environ.get("EVALCTL_TEST_MODEL_DIR")  # reuse a build between local runs
    return build_tiny_model(Path(cached) if cached else tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def adapter_dirs(tiny_model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {name: write_lora_adapter(tiny_model, root / name, rank=8, scale=0.5, seed=seed)
            for name, seed in (("A", 1), ("B", 2))}


def start_gateway(model_dir: Path, log: Path, *extra: str) -> ServerProcess:
    args = ["--model", str(model_dir), "--name", "tiny", *ENGINE_ARGS, *extra]
    return ServerProcess(args, log, env=ENGINE_ENV).start(timeout=600)


def serve_config(model_dir: Path) -> dict:
    """Two base models behind one endpoint: the tiny LM (with LoRA) and the same weights as an embedder."""
    common = {"model": str(model_dir), "dtype": "float32", "max_model_len": 512, "env": ENGINE_ENV}
    return {"engines": [
        {**common, "name": "tiny", "aliases": ["tiny-alias"], "max_lora_rank": 8, "max_loras": 4},
        {**common, "name": "tiny-embed", "runner": "pooling", "convert": "embed", "enable_lora": False},
    ]}


@pytest.fixture(scope="session")
def gateway(tiny_model, adapter_dirs, tmp_path_factory) -> Gateway:
    logs = tmp_path_factory.mktemp("logs")
    config = logs / "serve.yaml"
    config.write_text(yaml.safe_dump(serve_config(tiny_model)))
    results = tmp_path_factory.mktemp("results")
    proc = ServerProcess(["--config", str(config), "--api-key", API_KEY, "--admin-key", ADMIN_KEY,
                          "--log-dir", str(logs), "--results-dir", str(results),
                          "--jobs-dir", str(logs / "jobs")],
                         logs / "gateway.log").start(timeout=600)
    yield Gateway(proc.url, proc, tiny_model, adapter_dirs, results_dir=results)
    proc.stop()


@pytest.fixture
def slow_model(gateway):
    """A served LoRA adapter for tests of in-flight behaviour (streams arriving over time, clients
    that leave mid-generation). Base traffic no longer takes the zero adapter when the engine's
    self-test passes, and the tiny base then decodes 480 tokens before a test can even watch it;
    the LoRA path is ~2.6x slower per token on CPU, which gives these tests their window."""
    name = "slow-lora"
    with gateway.admin() as admin:
        r = admin.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(gateway.adapters["A"])})
        assert r.status_code == 200, r.text
    yield name
    with gateway.admin() as admin:
        admin.post("/v1/unload_lora_adapter", json={"lora_name": name})
