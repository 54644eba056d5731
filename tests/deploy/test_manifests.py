"""deploy/: Kubernetes manifests validated against the API schemas of a pinned Kubernetes
version (kubernetes-validate, strict: unknown fields fail), the GPU compose file parsed and
checked for what matters, and the gateway configs they embed loaded as real settings."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from server.settings import ServeSettings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.31.0"  # the oldest Kubernetes these manifests promise to run on
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def resources() -> list[tuple[str, dict]]:
    out = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in resources() if doc["kind"] == kind}


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("label,doc", resources(), ids=[label for label, _ in resources()])
def test_manifest_is_valid_kubernetes(label, doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validator_rejects_a_broken_manifest():
    """The check above can fail: a misspelt field and a wrong type are caught."""
    doc = by_kind("Deployment")["vllm-policy"]
    bad = yaml.safe_load(yaml.safe_dump(doc))
    container(bad)["readinessProbe"]["httpGet"]["pth"] = "/health"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    bad = yaml.safe_load(yaml.safe_dump(doc))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_every_namespaced_resource_is_in_the_evalctl_namespace():
    for label, doc in resources():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "evalctl", label


@pytest.mark.parametrize("name,gpus,tp", [("vllm-policy", 1, 1), ("vllm-judge", 2, 2)])
def test_vllm_deployments_request_gpus_matching_tensor_parallel(name, gpus, tp):
    d = by_kind("Deployment")[name]
    c = container(d)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == gpus == c["resources"]["requests"]["nvidia.com/gpu"]
    args = c["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == str(tp) and gpus % tp == 0
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm"


def test_lora_engines_and_gateway_share_the_adapter_volume_at_one_path():
    deployments = by_kind("Deployment")
    config = yaml.safe_load(by_kind("ConfigMap")["evalctl-serve"]["data"]["serve.yaml"])
    store = config["adapter_store"]
    for name in ("vllm-policy", "evalctl-gateway"):
        spec = deployments[name]["spec"]["template"]["spec"]
        claim = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in spec["volumes"]}
        mount = next(m for m in container(deployments[name])["volumeMounts"] if claim.get(m["name"]) == "evalctl-adapters")
        assert store.startswith(mount["mountPath"] + "/"), name
    assert by_kind("PersistentVolumeClaim")["evalctl-adapters"]["spec"]["accessModes"] == ["ReadWriteMany"]
    policy = container(deployments["vllm-policy"])
    assert "--enable-lora" in policy["args"]
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in policy["env"]


def test_gateway_config_in_the_configmap_loads_and_discovers_the_headless_services():
    config = yaml.safe_load(by_kind("ConfigMap")["evalctl-serve"]["data"]["serve.yaml"])
    settings = ServeSettings(**config)
    services = by_kind("Service")
    for engine in settings.engines:
        host, port = engine.discover.rsplit(":", 1)
        svc = services[host.split(".")[0]]
        assert svc["spec"]["clusterIP"] == "None"  # headless: one DNS record per ready pod
        assert int(port) == svc["spec"]["ports"][0]["port"]
        assert host.split(".")[1] == "evalctl" and engine.managed and not engine.local
    policy = next(e for e in settings.engines if e.name == "policy")
    args = container(by_kind("Deployment")["vllm-policy"])["args"]
    assert policy.max_lora_rank == int(args[args.index("--max-lora-rank") + 1])
    gw = by_kind("Deployment")["evalctl-gateway"]
    assert gw["spec"]["replicas"] == 1 and gw["spec"]["strategy"]["type"] == "Recreate"
    assert container(gw)["readinessProbe"]["httpGet"]["path"] == "/health"
    assert services["evalctl"]["spec"]["selector"] == gw["spec"]["selector"]["matchLabels"]


def test_gpu_compose_file():
    compose = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())
    services = compose["services"]
    assert {"policy", "judge", "gateway"} <= set(services)
    gateway_cfg = load_settings(DEPLOY / "serve.compose.yaml")
    for engine in gateway_cfg.engines:  # one vLLM service per base model, reached by service name
        (url,) = engine.urls
        svc = services[url.split("//")[1].split(":")[0]]
        assert "--served-model-name" in svc["command"]
        devices = svc["deploy"]["resources"]["reservations"]["devices"][0]
        assert devices["capabilities"] == ["gpu"] and devices["driver"] == "nvidia"
        assert svc["healthcheck"]["test"][-1].endswith("/health")
        assert engine.name in services["gateway"]["depends_on"]
    policy = services["policy"]
    assert "--enable-lora" in policy["command"]
    assert policy["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    # The store is on the volume both sides mount at the same path.
    assert gateway_cfg.adapter_store.as_posix().startswith("/adapters/")
    assert "adapters:/adapters" in policy["volumes"] and "adapters:/adapters" in services["gateway"]["volumes"]
    assert "serve.compose.yaml" in services["gateway"]["command"]


def test_dockerfile_builds_the_gateway_without_engines():
    lines = (DEPLOY / "Dockerfile.gateway").read_text().splitlines()
    instructions = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    runs = [ln for ln in instructions if ln.startswith("RUN ")]
    assert runs == ["RUN pip install --no-cache-dir ."], runs  # the base install: no extras
    assert not any(word in ln.lower() for ln in instructions for word in ("vllm", "torch", "cuda"))
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    base = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.S | re.M)[1]
    names = re.findall(r'^\s*"([A-Za-z0-9_.\-]+)', base, re.M)
    assert "fastapi" in names and not [n for n in names if n.lower().startswith(("vllm", "torch"))], names
    image = container(by_kind("Deployment")["evalctl-gateway"])["image"]
    assert image.split(":")[0] == "evalctl-gateway"


def test_serve_yaml_examples_in_the_docs_load():
    """Every serve.yaml snippet in the docs (README.md, docs/, deploy/README.md) is a valid gateway config."""
    from tests.docs_blocks import code_blocks

    blocks = [b for _, b in code_blocks("yaml") if "engines:" in b]
    assert len(blocks) >= 3
    for block in blocks:
        settings = ServeSettings(**yaml.safe_load(block))
        assert settings.engines
