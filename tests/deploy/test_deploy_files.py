"""What can be checked of the deployment files without Docker or a cluster.

- Kubernetes manifests validate against the API schemas (``kubernetes-validate``, offline,
  strict) and fit together (selectors, probes, resources, HPA target, PDB, ConfigMap policy).
- ``docker-compose.yml`` parses, every bind-mounted path exists, service names match what the
  Prometheus and Grafana configs point at.
- The Dockerfile installs with the same script CI runs, keeps torch out, runs as non-root, has a
  HEALTHCHECK, copies only paths that exist and that ``.dockerignore`` lets through; the
  estimated gateway image stays under the README's budget.
- ``promtool`` accepts the Prometheus config and alert rules.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.policy.loader import load_config
from gateway.policy.schema import Config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
ROUTER = ROOT / "routers" / "artifacts" / "mf-mmlu"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s() -> dict[tuple[str, str], dict]:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = {}
    for res in kust["resources"]:
        for d in _docs(K8S / res):
            out[(d["kind"], d["metadata"]["name"])] = d
    return out


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


# ---------------------------------------------------------------- Kubernetes


def test_k8s_manifests_pass_the_schema_validator():
    kv = pytest.importorskip("kubernetes_validate")
    version = kv.latest_version()
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    n = 0
    for res in kust["resources"]:
        for d in _docs(K8S / res):
            kv.validate(d, version, strict=True)
            n += 1
    assert n >= 7
    # the validator is really strict: a misspelt field and a wrong type are refused
    dep = _k8s()[("Deployment", "shunter")]
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz", "port": 8080}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, version, strict=True)
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, version, strict=True)


def test_k8s_pieces_fit_together():
    objs = _k8s()
    dep = objs[("Deployment", "shunter")]
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    c = pod["spec"]["containers"][0]
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    svc = objs[("Service", "shunter")]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] in ("http", port)
    hpa = objs[("HorizontalPodAutoscaler", "shunter")]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shunter"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = objs[("PodDisruptionBudget", "shunter")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # the policy ConfigMap is mounted where SHUNTER_CONFIG points
    env = {e["name"]: e for e in c["env"]}
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["policies"]
    cm_name = next(v["configMap"]["name"] for v in pod["spec"]["volumes"] if v["name"] == "policies")
    cm = objs[("ConfigMap", cm_name)]
    key = Path(env["SHUNTER_CONFIG"]["value"]).name
    assert env["SHUNTER_CONFIG"]["value"] == f"{mount}/{key}" and key in cm["data"]
    # the gateway reaches Redis through the Bitnami chart's master service
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    redis = next(h for h in kust["helmCharts"] if h["name"] == "redis")
    assert "bitnami" in redis["repo"] and redis["version"]
    assert f"{redis['releaseName']}-master:6379" in env["SHUNTER_REDIS_URL"]["value"]
    assert redis["valuesInline"]["auth"]["existingSecret"] == env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
    # the local upstream named in the policy is the llama Service
    policy = yaml.safe_load(cm["data"][key])
    llama = objs[("Service", "shunter-llama")]
    assert (
        policy["upstreams"]["local"]["base_url"]
        == f"http://{llama['metadata']['name']}:{llama['spec']['ports'][0]['port']}/v1"
    )


def _check_policy(text: str, tmp_path: Path) -> None:
    data = yaml.safe_load(text)
    Config.model_validate(data)  # the schema, always
    if ROUTER.joinpath("router.json").exists():  # the full load (router artifacts resolved) once shipped
        path = tmp_path / "policy.yaml"
        path.write_text(text)
        cfg = load_config(path)
        assert cfg.server.redis_url == "os.environ/SHUNTER_REDIS_URL"


def test_k8s_and_compose_policies_are_valid(tmp_path):
    cm = _k8s()[("ConfigMap", "shunter-policies")]
    _check_policy(cm["data"]["policy.yaml"], tmp_path)
    _check_policy((ROOT / "deploy" / "compose" / "shunter.yaml").read_text(), tmp_path)


# ---------------------------------------------------------------- docker compose


def test_compose_parses_and_every_path_exists():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"gateway", "redis", "prometheus", "grafana", "llama"} <= set(services)
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", dockerfile, re.M))
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            ctx = ROOT / build.get("context", ".")
            assert (ctx / build.get("dockerfile", "Dockerfile")).exists(), name
            assert build["target"] in stages, (name, build["target"])
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"
        for dep in svc.get("depends_on", []):
            assert dep in services
    for vol in (v.split(":")[0] for s in services.values() for v in s.get("volumes", [])):
        if not vol.startswith((".", "/")):
            assert vol in compose["volumes"], vol
    # the gateway's policy file is the mounted one, and it is valid
    gw = services["gateway"]
    cfg_path = gw["environment"]["SHUNTER_CONFIG"]
    assert any(v.endswith(f":{cfg_path}:ro") for v in gw["volumes"])
    # Prometheus scrapes the gateway service; Grafana's datasource is the prometheus service
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t
        for sc in prom["scrape_configs"]
        if sc["job_name"] == "shunter"
        for s in sc["static_configs"]
        for t in s["targets"]
    ]
    assert targets == ["gateway:8080"]
    ds = yaml.safe_load((ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ][0]
    assert ds["url"] == "http://prometheus:9090"
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("."))
    provider = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "shunter.yaml").read_text()
    )["providers"][0]
    assert grafana_mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "deploy" / "grafana" / "dashboards" / Path(home).name).exists()


# ---------------------------------------------------------------- Dockerfile


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p.rstrip("/")) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_dockerfile_installs_like_ci_without_torch():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)", text, re.M)
    assert [s for _, s in stages][-1] == "gateway", "the default (last) stage is the gateway"
    assert {"build", "runtime", "gateway", "llama"} <= {s for _, s in stages}
    # the same install script as CI: CI runs scripts/test.sh (-> `scripts/setup.sh test`), the images `gateway`/`serve`
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
    assert "scripts/setup.sh test" in (ROOT / "scripts" / "test.sh").read_text()
    assert "RUN scripts/setup.sh gateway" in text and "RUN scripts/setup.sh serve" in text
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    gateway_mode = setup.split('"$mode" = "gateway"', 1)[1].split("else", 1)[0]
    assert re.search(r"-e \.\s*$", gateway_mode.strip().splitlines()[-1]), "gateway mode installs the base package only"
    assert not [ln for ln in gateway_mode.splitlines() if "pip" in ln and "torch" in ln]
    assert "torch" not in text.replace("no torch", "").replace("No torch", "")
    # torch is only ever in the 'train' extra, which no image installs
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("torch") for d in project["dependencies"] + project["optional-dependencies"]["local"])
    # non-root, health check, the folders it trims are the ones the size estimate subtracts
    gateway_stage = text.split("AS gateway", 1)[1]
    assert re.search(r"^USER 10001", gateway_stage, re.M)
    assert "HEALTHCHECK" in gateway_stage and "/healthz" in gateway_stage
    size = _load_module(ROOT / "deploy" / "docker" / "image_size.py")
    for d in size.TRIM_DIRS:
        assert d in text, d
    # every COPY source exists and .dockerignore lets it through
    ignore = [
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        for src in line.split()[:-1]:
            assert (ROOT / src).exists(), src
            assert not _ignored(src.rstrip("/"), ignore), f"{src} is excluded by .dockerignore"
    for needed in ("routers/artifacts", "gateway", "scripts/setup.sh"):
        assert not _ignored(needed, ignore)


def test_image_size_estimate_is_within_budget():
    size = _load_module(ROOT / "deploy" / "docker" / "image_size.py")
    total, rows = size.estimate("gateway")
    names = {n for n, _ in rows}
    assert "onnxruntime" in names and "torch" not in names and "llama-cpp-python" not in names
    assert total < size.BUDGET_MB, f"estimated gateway image {total:.0f} MB > {size.BUDGET_MB} MB"


# ---------------------------------------------------------------- Prometheus


def test_promtool_accepts_config_and_rules():
    exe = shutil.which("promtool")
    if not exe:
        pytest.skip("promtool not installed (Debian package prometheus)")
    out = subprocess.run(
        [exe, "check", "config", str(ROOT / "deploy" / "prometheus" / "prometheus.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_kustomization_renders(tmp_path):
    """``kubectl kustomize`` builds the manifests (the Bitnami chart is left out: no helm here)."""
    exe = shutil.which("kubectl")
    if not exe:
        pytest.skip("kubectl not installed")
    kv = pytest.importorskip("kubernetes_validate")
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    kust = yaml.safe_load((work / "kustomization.yaml").read_text())
    assert kust.pop("helmCharts")
    (work / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    out = subprocess.run([exe, "kustomize", str(work)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "Service",
    ]
    for d in docs:
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "shunter"
        kv.validate(d, kv.latest_version(), strict=True)
