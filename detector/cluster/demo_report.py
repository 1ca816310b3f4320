"""What `make cluster-demo` writes: ``cluster-demo.json`` (everything, for a machine), ``summary.txt`` (the same,
readable; also printed), ``score-<scenario>.json`` and ``report.html`` (the demo's report of the shared log)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detector.cluster.demo_audit import AuditReport
from detector.cluster.demo_replicas import lease_log
from detector.demo.run import score_events
from detector.types import IncidentEvent

if TYPE_CHECKING:
    from detector.cluster.demo import ClusterDemoSettings, ClusterRun
    from detector.cluster.demo_replicas import DemoSchema, Replica


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S UTC")


def write_outputs(
    settings: ClusterDemoSettings,
    schema: DemoSchema,
    replicas: list[Replica],
    run: ClusterRun,
    log: list[IncidentEvent],
    evidence: dict[str, bytes],
    truths: dict[str, dict[str, Any]],
    report: AuditReport,
    wall_s: float,
) -> None:
    from detector.demo.report import ScenarioReport, render_html
    from detector.sim.scenarios import SCENARIOS as PLANS
    from detector.sim.truth import Truth

    out = settings.demo.out_dir
    tables, scores, pages = [], {}, []
    for name, truth_dict in truths.items():
        scored = score_events(truth_dict, log)
        tables.append(scored.text())
        scores[name] = scored.to_dict()
        (out / f"score-{name}.json").write_text(json.dumps(scored.to_dict(), indent=2))
        truth = Truth.from_dict(truth_dict)
        mine = [e for e in log if e.source_id == truth.source_id]
        matches = {i.incident_id: i.object_id for i in scored.incidents if i.object_id is not None}
        plan = PLANS[name](settings.demo.seed, None, None)
        pages.append(ScenarioReport(name, truth, plan.world.street, mine, evidence, matches, scored.text()))
    kill = run.kill
    lines = [
        f"cluster demo: {len(replicas)} replicas sharing PostgreSQL schema {schema.name}"
        f"{' (kept)' if settings.keep_schema else ' (dropped)'}, cluster.lease_s {settings.lease_s:g} s",
    ]
    for r in replicas:
        fate = (
            f"killed (SIGKILL) at {_clock(kill.at_ts)} after {kill.after_frames} frames of its source were answered"
            if r.replica_id == kill.replica
            else "up to the end"
        )
        lines.append(f"  {r.replica_id} {r.address}: {fate}")
    lines.append("streams (LOSSLESS):")
    for name, summary in zip(truths, run.summaries, strict=True):
        errors = ", ".join(f"{k} {v}" for k, v in sorted(summary.errors.items())) or "none"
        lines.append(
            f"  {name} -> {', '.join(run.targets[name])}: sent {summary.frames_sent}, answered {summary.results}, "
            f"ok {summary.frames_ok}, errors {errors}, unanswered {summary.unanswered}; longest pause after the "
            f"kill {run.pauses_s[name]:.1f} s"
        )
    lines.append("leases, as the replicas logged them (UTC):")
    lines += [f"  {line}" for line in lease_log(replicas)] or ["  none logged"]
    lines.append("subscribers (one per replica, from sequence 0):")
    for f in run.followers:
        lines.append(
            f"  {f.consumer} on {f.replica.replica_id}: received {len(f.received)} events "
            f"(last sequence {f.last_sequence}), reconnects {f.reconnects}"
        )
    text = "\n".join(lines) + "\n\n" + "\n\n".join(tables) + "\n\n" + report.text()
    text += f"\n\ncluster demo wall time {wall_s:.0f} s; audit {'PASSED' if report.passed else 'FAILED'}"
    document = {
        "schema": schema.name,
        "lease_s": settings.lease_s,
        "wall_s": wall_s,
        "replicas": [{"replica_id": r.replica_id, "address": r.address, "log": str(r.log_path)} for r in replicas],
        "kill": {
            "replica": kill.replica,
            "at_ts": kill.at_ts,
            "after_frames": kill.after_frames,
            "owners_before": kill.owners_before,
            "owners_after": run.owners_after,
        },
        "streams": {
            name: {"targets": run.targets[name], "pause_after_kill_s": run.pauses_s[name], **s.as_dict()}
            for name, s in zip(truths, run.summaries, strict=True)
        },
        "subscribers": [
            {
                "consumer": f.consumer,
                "replica": f.replica.replica_id,
                "received": len(f.received),
                "reconnects": f.reconnects,
                "caught_up_to": f.caught_up_to,
            }
            for f in run.followers
        ],
        "scores": {name: s["metrics"] for name, s in scores.items()},
        "audit": report.to_dict(),
    }
    (out / "cluster-demo.json").write_text(json.dumps(document, indent=2, default=str))
    (out / "summary.txt").write_text(text + "\n")
    html = render_html(pages, "StreetWatch cluster demo: one replica killed mid-run", text)
    (out / "report.html").write_text(html)
    print("\n" + text)
    print(f"\nwritten to {out.resolve()}: summary.txt, cluster-demo.json, report.html")
