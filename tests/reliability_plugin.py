"""pytest plugin for `make reliability`: writes reports/reliability.json from the outcomes of the
reliability suite (test_kill_stages, test_bad_inputs, test_bad_data, test_tracking_faults,
test_security, and the prepare kill in test_prepare_real).

Only counts and names, no timings, so the file changes only when the suite or its outcome does.
Usage: pytest -p reliability_plugin tests/reliability/test_kill_stages.py ... (the Makefile target does it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

OUT = Path(os.environ.get("RELIABILITY_JSON", Path(__file__).resolve().parents[1] / "reports/reliability.json"))
_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":  # a failed setup counts as failed
        prev = _outcomes.get(report.nodeid)
        if prev in (None, "passed"):
            _outcomes[report.nodeid] = report.outcome


def _of(module: str) -> dict[str, str]:
    return {k.split("::", 1)[1]: v for k, v in _outcomes.items() if k.split("::")[0].endswith(module)}


def pytest_sessionfinish(session, exitstatus):
    import test_kill_stages as K
    kills, bad, tracking, security = (_of("test_kill_stages.py"), {**_of("test_bad_inputs.py"), **_of("test_bad_data.py")},
                                      _of("test_tracking_faults.py"), _of("test_security.py"))
    prepare_kill = _of("test_prepare_real.py").get("test_killed_prepare_resumes_and_matches_an_uninterrupted_run")
    if not kills or not bad:
        return  # not the reliability suite: write nothing
    ok = lambda d, name: d.get(name) == "passed"  # noqa: E731
    kill_ok = all(ok(kills, t) for t in ("test_every_kill_point_killed_its_stage", "test_no_partial_file_looks_complete",
                                        "test_final_outputs_equal_an_uninterrupted_run"))
    lost_ok = kill_ok and ok(kills, "test_mlflow_lost_and_doubled_no_metric") and \
        ok(tracking, "test_server_lost_mid_run_loses_no_metric")
    suite = {**{f"k:{k}": v for k, v in kills.items()}, **{f"b:{k}": v for k, v in bad.items()},
             **{f"t:{k}": v for k, v in tracking.items()}, **{f"s:{k}": v for k, v in security.items()},
             **({"prepare_kill": prepare_kill} if prepare_kill else {})}
    passed = [k for k, v in suite.items() if v == "passed"]
    out = {
        "how": "make reliability",
        "tests_passed": len(passed),
        "tests_failed": len(suite) - len(passed),
        "kill_points_tested": (len(K.KILL_POINTS) if kill_ok else 0) + (prepare_kill == "passed"),
        "kill_points": [f for f, _ in K.KILL_POINTS] + ["prepare: after 3 finished shards"] * (prepare_kill == "passed"),
        "stages_killed": ["prepare"] * (prepare_kill == "passed") + ["train", "evaluate", "ensemble", "compare", "report"],
        "bad_inputs_tried": sum(v == "passed" for v in bad.values()),
        "bad_inputs": sorted(k.removeprefix("test_").replace("bad_params_stop_before_any_work", "params") for k in bad),
        "tracking_faults_tried": sum(v == "passed" for v in tracking.values()),
        "security_checks": sum(v == "passed" for k, v in {**security, **{
            "secrets": kills.get("test_no_secret_from_the_environment_is_written", "failed")}}.items()),
        "data_or_metrics_lost": 0 if lost_ok else None,
    }
    OUT.write_text(json.dumps(out, indent=2) + "\n")
