"""The Grafana dashboard (infra/grafana/dashboards/hearteye.json) is well formed, uses the
provisioned data source, and queries only metrics that serving or mlflow export. Its queries are run
against a real Prometheus in tests/integration/test_monitoring.py; Grafana itself is not run here."""

from __future__ import annotations

import json
import re

import yaml

from tests.infra.conftest import REPO_ROOT

GRAFANA = REPO_ROOT / "infra" / "grafana"
METRIC = re.compile(r"\b(hearteye_[a-z_]+|up)\b")


def _dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards" / "hearteye.json").read_text())


def test_panels_use_the_provisioned_prometheus_and_have_queries() -> None:
    source = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    dashboard = _dashboard()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("requests", "latency", "5xx", "class mix", "drift", "low-confidence"):
        assert topic in titles, topic
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
    (annotation,) = dashboard["annotations"]["list"]
    assert "hearteye_model_swaps_total" in annotation["expr"]


def test_queries_name_only_exported_metrics() -> None:
    exported = set(
        re.findall(r'"(hearteye_[a-z_]+)"', (REPO_ROOT / "serving" / "metrics.py").read_text())
    )
    dashboard = _dashboard()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs.append(dashboard["annotations"]["list"][0]["expr"])
    for expr in exprs:
        for name in METRIC.findall(expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name == "up" or base in exported, (name, expr)
