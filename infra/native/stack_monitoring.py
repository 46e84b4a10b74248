"""The native stack's Prometheus: Debian's ``prometheus`` binary, when it is installed, scraping
every serving instance and mlflow server's metrics (through infra/mlflow/mlflow_metrics.py, as in
compose) on 127.0.0.1 and evaluating infra/prometheus/alerts.yml (the rules compose's Prometheus
loads). Without the binary the stack runs without it.
"""

from __future__ import annotations

import json

from stack_config import REPO_ROOT, StackPlan, free_port
from stack_process import http_status, start, wait_until
from stack_services import base_env, find_tool

ALERT_RULES = REPO_ROOT / "infra" / "prometheus" / "alerts.yml"
#: Scrape and rule-evaluation interval (s): short, so a test sees traffic within seconds.
SCRAPE_INTERVAL_S = 5


def prometheus_binary() -> str | None:
    """Debian's prometheus (``scripts/ensure-system.sh prometheus``), or None."""
    return find_tool("prometheus")


def prometheus_config(plan: StackPlan) -> dict[str, object]:
    """The same jobs as infra/prometheus/prometheus.yml, with this stack's addresses."""
    interval = f"{SCRAPE_INTERVAL_S}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(ALERT_RULES)],
        "scrape_configs": [
            {
                "job_name": "hearteye-serving",
                "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in plan.serving_ports]}],
            },
            {
                "job_name": "mlflow",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{plan.ports['mlflow_metrics']}"]}],
            },
        ],
    }


def start_prometheus(plan: StackPlan, timeout_s: float) -> None:
    """Write the config (JSON is YAML), start prometheus on a free port, wait until ready."""
    binary = prometheus_binary()
    assert binary is not None
    home = plan.state / "prometheus"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "prometheus.yml"
    config.write_text(json.dumps(prometheus_config(plan), indent=2))
    used = {plan.http_port, *plan.ports.values(), *plan.serving_ports}
    plan.prometheus_port = free_port(used)
    plan.save()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={plan.state / 'data' / 'prometheus'}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{plan.prometheus_port}",
    ]
    record = start(
        "prometheus", command, plan.state / "logs" / "prometheus.log", base_env(plan), home
    )
    plan.processes.append(record)
    plan.save()
    ready = f"http://127.0.0.1:{plan.prometheus_port}/-/ready"
    wait_until("prometheus", lambda: http_status(ready) == 200, record, timeout_s)
