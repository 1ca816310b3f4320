"""The open311 connector with the real delivery runner and SQLite store against a GeoReport v2 server on
loopback (``tests/delivery/georeport.py``): what is filed, how failures end, the case id on the incident, no
second filing on redelivery, and the city's verdict coming back by polling."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from detector.api.evidence_http import EvidenceLinks, EvidenceLinkSettings
from detector.delivery.base import PermanentError
from detector.delivery.open311 import Open311Connector, Open311Settings
from detector.delivery.runner import DeliveryRunner, consumer_name
from detector.delivery.settings import DeliveryFilter, DeliverySettings
from detector.incidents.feedback import record_case_update
from detector.store import SqliteStore
from detector.types import CaseState, EventType, EvidenceKind, IncidentEvent, Telemetry
from tests.delivery.georeport import API_KEY, HANG, TOKEN, GeoReportServer
from tests.delivery.test_webhook_delivery import run, wait_until
from tests.store.factories import make_event

LINK_SECRET = "evidence-link-secret-0123456789"
SERVICE_CODES = {"200501": "STALL", "ROAD_DAMAGE": "POTHOLE", "FLY_TIPPING": "BOGUS"}


def connector_entry(endpoint: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "city311",
        "kind": "open311",
        "endpoint": endpoint,
        "api_key": API_KEY,
        "service_codes": SERVICE_CODES,
        "attributes": {"source_system": "streetwatch"},
        "email": "ops@streetwatch.city.lan",
        "timeout_s": 0.5,
        "poll_interval_s": 0,
        **overrides,
    }


def delivery(*connectors: dict[str, Any]) -> DeliverySettings:
    return DeliverySettings.model_validate(
        {
            "connectors": list(connectors),
            "max_attempts": 2,
            "backoff": {"initial_s": 0.01, "max_s": 0.05, "jitter": 1.0},
        }
    )


def feedback(store: SqliteStore, incident_id: str) -> list[tuple[CaseState | None, str, str]]:
    return [
        (e.case_state, e.case_id, e.note)
        for e in store.read_events(0, 1000)
        if e.type is EventType.FEEDBACK and e.incident_id == incident_id
    ]


def test_an_opened_incident_is_filed_with_the_georeport_fields_and_its_id_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        city = GeoReportServer()
        await city.start()
        links = EvidenceLinks(EvidenceLinkSettings(base_url="https://sw.city.lan/", secret=LINK_SECRET))
        with SqliteStore(tmp_path / "data") as store:
            crop = store.put_evidence(EvidenceKind.CROP_JPEG, b"crop")
            frame = store.put_evidence(EvidenceKind.FRAME_JPEG, b"frame")
            store.append(
                [
                    make_event("inc-1", evidence=(crop, frame)),
                    make_event("inc-1", EventType.UPDATED),
                    make_event("inc-1", EventType.CLEARED),
                ]
            )
            runner = DeliveryRunner(store, delivery(connector_entry(city.endpoint)), evidence_url=links.evidence_url)
            await runner.start()
            try:  # seq 4 is the FILED verdict the connector appended (and then skipped)
                await wait_until(lambda: runner.status()[0].offset == 4)
            finally:
                await runner.stop()
                await city.stop()
            assert len(city.posts()) == 1  # UPDATED, CLEARED and FEEDBACK are not filed
            [filed] = city.by_incident("inc-1")
            form = filed.form
            assert form["api_key"] == API_KEY
            assert form["service_code"] == "STALL"  # by case code 200501 (the category has no mapping)
            assert (form["lat"], form["long"]) == ("39.9042", "116.4074")
            assert form["attribute[incident_id]"] == "inc-1"
            assert form["attribute[source_system]"] == "streetwatch"
            assert form["email"] == "ops@streetwatch.city.lan"
            assert "device_id" not in form
            for part in ("无照经营游商", "ROAD_OCCUPYING_STALL", "case code 200501", "Confidence 0.87", "cam-1"):
                assert part in form["description"]
            assert "first seen 1970-01-01 00:01:40 UTC" in form["description"]
            assert "incident inc-1" in form["description"]
            media = urlsplit(form["media_url"])
            assert (media.scheme, media.netloc, media.path) == ("https", "sw.city.lan", f"/evidence/{frame.sha256}.jpg")
            query = {k: v[0] for k, v in parse_qs(media.query).items()}
            assert links.verify(frame.sha256, query["exp"], query["sig"], now=float(query["exp"]) - 1)

            record = store.get_incident("inc-1")
            assert record is not None
            assert (record.case_state, record.case_id) == (CaseState.FILED, "SR-1")
            assert feedback(store, "inc-1") == [(CaseState.FILED, "SR-1", "open311 request SR-1")]
            assert store.dead_letters(consumer_name("city311")) == []

    run(scenario)


def test_failures_are_retried_and_refusals_dead_lettered_with_the_citys_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        city = GeoReportServer()
        await city.start()
        city.script = [500, 500, HANG, 429]
        unlocated: dict[str, Any] = {"location": None, "location_note": "cam-4 has no geo position"}
        with SqliteStore(tmp_path / "data") as store:
            store.append(
                [
                    make_event("inc-1"),
                    make_event("inc-2", category="FLY_TIPPING", case_code="999"),  # mapped to a code the city lacks
                    make_event("inc-3", category="GRAFFITI", case_code="777"),  # no mapping at all
                    make_event("inc-4", **unlocated),
                    make_event("inc-5", location=None, source_pose=Telemetry(lat=31.2304, lon=121.4737)),
                ]
            )
            runner = DeliveryRunner(store, delivery(connector_entry(city.endpoint)))
            await runner.start()
            try:  # 5 events and the 2 FILED verdicts
                await wait_until(lambda: runner.status()[0].offset == 7)
            finally:
                await runner.stop()
                await city.stop()
            posts = city.posts()
            assert [p.form["attribute[incident_id]"] for p in posts] == ["inc-1"] * 5 + ["inc-2"] * 2 + ["inc-5"]
            assert posts[4].at - posts[3].at >= 0.95  # the 429's Retry-After: 1 was waited for
            assert [r.form["attribute[incident_id]"] for r in city.requests.values()] == ["inc-1", "inc-5"]
            letters = store.dead_letters(consumer_name("city311"))
            assert [(d.event_sequence, d.reason) for d in letters] == [
                (2, "HTTP 400: Invalid service_code: 'BOGUS'"),
                (
                    3,
                    "no Open311 service_code for case code '777' or category 'GRAFFITI' "
                    "(add it to service_codes, or set default_service_code)",
                ),
                (4, "no location (cam-4 has no geo position): the event has neither a location nor a source position"),
            ]
            pose_filed = city.by_incident("inc-5")[0].form
            assert (pose_filed["lat"], pose_filed["long"]) == ("31.2304", "121.4737")
            assert "the position of cam-1, not of the object itself" in pose_filed["description"]
            cases = {i: store.get_incident(i) for i in ("inc-1", "inc-2", "inc-3", "inc-4", "inc-5")}
            assert {i: (r.case_state, r.case_id) for i, r in cases.items() if r is not None} == {
                "inc-1": (CaseState.FILED, "SR-1"),
                "inc-2": (None, ""),
                "inc-3": (None, ""),
                "inc-4": (None, ""),
                "inc-5": (CaseState.FILED, "SR-2"),
            }

    run(scenario)


def test_a_redelivered_opened_event_does_not_file_a_second_request(tmp_path: Path) -> None:
    async def scenario() -> None:
        city = GeoReportServer()
        await city.start()
        with SqliteStore(tmp_path / "data") as store:
            store.append([make_event("inc-1")])
            first = DeliveryRunner(store, delivery(connector_entry(city.endpoint)))
            await first.start()
            await wait_until(lambda: first.status()[0].offset == 2)
            await first.stop()
            # A consumer reading the log from the start again sees OPENED inc-1 a second time, as the same
            # connector would after a crash between storing FILED and committing its offset.
            again = DeliveryRunner(store, delivery(connector_entry(city.endpoint, name="city311-again")))
            await again.start()
            try:
                await wait_until(lambda: again.status()[0].offset == 2)
                store.append([make_event("inc-2")])
                await wait_until(lambda: again.status()[0].offset == 4)
            finally:
                await again.stop()
                await city.stop()
            assert [r.form["attribute[incident_id]"] for r in city.requests.values()] == ["inc-1", "inc-2"]
            assert len(city.posts()) == 2
            assert feedback(store, "inc-1") == [(CaseState.FILED, "SR-1", "open311 request SR-1")]
            assert store.dead_letters(consumer_name("city311-again")) == []

    run(scenario)


def test_polling_turns_the_citys_closed_requests_into_resolved_or_rejected(tmp_path: Path) -> None:
    async def scenario() -> None:
        city = GeoReportServer()
        await city.start()
        city.script = [200, TOKEN, 200]
        city.get_script = [500]  # the first poll fails: counted, and polling goes on
        settings = Open311Settings.model_validate(
            connector_entry(city.endpoint, poll_interval_s=0.05, rejected_when_notes_match=["duplicate", r"\binvalid"])
        )
        connector = Open311Connector(settings)
        with SqliteStore(tmp_path / "data") as store:
            store.append([make_event("inc-1"), make_event("inc-2"), make_event("inc-3")])
            store.append([make_event("inc-9", category="GRAFFITI", case_code="777")])
            record_case_update(store, "inc-9", CaseState.FILED, case_id="EXT-9")  # another case system's
            runner = DeliveryRunner(store, delivery(), connectors=[(connector, DeliveryFilter())])

            def case(incident_id: str) -> tuple[CaseState | None, str]:
                record = store.get_incident(incident_id)
                assert record is not None
                return record.case_state, record.case_id

            await runner.start()
            try:
                await wait_until(lambda: case("inc-3") == (CaseState.FILED, "SR-3"))
                assert case("inc-2") == (CaseState.FILED, "token:T-2")
                city.assign("T-2")
                await wait_until(lambda: case("inc-2") == (CaseState.FILED, "SR-2"))
                city.close_request("SR-1", "Vendor moved on; area clear")
                city.close_request("SR-2", "Duplicate of SR-1")
                await wait_until(lambda: case("inc-1")[0] is CaseState.RESOLVED)
                await wait_until(lambda: case("inc-2")[0] is CaseState.REJECTED)
                polls = connector.polls
                await wait_until(lambda: connector.polls >= polls + 2)  # closed requests are no longer polled
            finally:
                await runner.stop()
                await city.stop()
            assert connector.poll_failures >= 1
            assert feedback(store, "inc-1") == [
                (CaseState.FILED, "SR-1", "open311 request SR-1"),
                (CaseState.RESOLVED, "SR-1", "Vendor moved on; area clear"),
            ]
            assert feedback(store, "inc-2") == [
                (CaseState.FILED, "token:T-2", "open311 request T-2"),
                (CaseState.FILED, "SR-2", "open311 request SR-2 (token T-2)"),
                (CaseState.REJECTED, "SR-2", "Duplicate of SR-1"),
            ]
            assert case("inc-3") == (CaseState.FILED, "SR-3")  # still open at the city
            assert not any("EXT-9" in c.path for c in city.calls)  # not a request this connector could file

    run(scenario)


def located(**overrides: Any) -> IncidentEvent:
    return make_event("inc-1", **overrides)


@pytest.mark.parametrize(
    ("event", "default", "expected"),
    [
        (located(case_code="200501", category="ROAD_DAMAGE"), None, "STALL"),  # the case code first
        (located(case_code="1", category="ROAD_DAMAGE"), None, "POTHOLE"),
        (located(case_code="1", category="GRAFFITI"), "OTHER", "OTHER"),
        (located(case_code="1", category="GRAFFITI"), None, PermanentError),
    ],
)
def test_the_service_code_comes_from_the_case_code_the_category_or_the_default(
    event: IncidentEvent, default: str | None, expected: str | type[Exception]
) -> None:
    connector = Open311Connector(
        Open311Settings.model_validate(connector_entry("http://city/v2", default_service_code=default))
    )
    if isinstance(expected, str):
        assert connector.request_form(event)["service_code"] == expected
    else:
        with pytest.raises(expected, match="no Open311 service_code"):
            connector.request_form(event)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"service_codes": {}}, "needs service_codes or default_service_code"),
        ({"rejected_when_notes_match": ["dup("]}, "'dup\\(' is not a regex"),
        ({"endpoint": "ftp://city/v2"}, "endpoint"),
        ({"poll_interval_s": -1}, "poll_interval_s"),
        ({"api_secret": "x"}, "api_secret"),
    ],
)
def test_bad_open311_settings_fail_with_a_readable_message(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        delivery({**connector_entry("http://city/v2"), **overrides})
