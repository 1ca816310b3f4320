"""A GeoReport v2 (Open311) server on loopback for the open311 connector's tests: it checks the form a city's
endpoint requires, keeps the requests it took, and answers like a real one (a list of one object; errors as a
list of {code, description})."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.delivery.loopback import HANG as HANG
from tests.delivery.loopback import ScriptedPeer

API_KEY = "city-api-key"
SERVICE_CODES = frozenset({"STALL", "POTHOLE"})
TOKEN = "token"  # a script action besides those of ScriptedPeer: answer with a token only


@dataclass
class ServiceRequest:
    service_request_id: str
    form: dict[str, str]
    status: str = "open"
    status_notes: str = ""
    token: str = ""


@dataclass
class Call:
    method: str
    path: str
    at: float  # time.monotonic() when it arrived
    form: dict[str, str] = field(default_factory=dict)


class GeoReportServer(ScriptedPeer):
    """``script`` answers the next POSTs (an HTTP status, HANG, or TOKEN: answer with a token only);
    ``get_script`` the next GETs; anything else is served normally."""

    def __init__(self) -> None:
        super().__init__()
        self.get_script: list[int] = []
        self.requests: dict[str, ServiceRequest] = {}
        self.calls: list[Call] = []

    def by_incident(self, incident_id: str) -> list[ServiceRequest]:
        return [r for r in self.requests.values() if r.form["attribute[incident_id]"] == incident_id]

    def posts(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST"]

    def close_request(self, service_request_id: str, notes: str) -> None:
        request = self.requests[service_request_id]
        request.status, request.status_notes = "closed", notes

    async def _post(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-www-form-urlencoded"
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.calls.append(Call("POST", request.path, time.monotonic(), form))
        action = self.next_action()
        failure = await self.scripted_failure(action, lambda status: _errors(status, "Internal error"))
        if failure is not None:
            return failure
        if form.get("api_key") != API_KEY:
            return _errors(403, "Invalid api_key")
        if form.get("service_code") not in SERVICE_CODES:
            return _errors(400, f"Invalid service_code: {form.get('service_code')!r}")
        try:
            lat, lon = float(form["lat"]), float(form["long"])
        except (KeyError, ValueError):
            return _errors(400, "lat and long are required")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not form.get("description"):
            return _errors(400, "A location and a description are required")
        sid = f"SR-{len(self.requests) + 1}"
        if action == TOKEN:
            token = f"T-{len(self.requests) + 1}"
            self.requests[sid] = ServiceRequest("", form, token=token)  # the id is assigned later (assign())
            return web.json_response([{"token": token}])
        self.requests[sid] = ServiceRequest(sid, form)
        return web.json_response([{"service_request_id": sid, "service_notice": "", "account_id": None}])

    def assign(self, token: str) -> str:
        """The city's back office turns a token into a service request id."""
        for sid, request in self.requests.items():
            if request.token == token:
                request.service_request_id = sid
                return sid
        raise KeyError(token)

    async def _get_request(self, request: web.Request) -> web.Response:
        self.calls.append(Call("GET", request.path, time.monotonic()))
        if self.get_script:
            return _errors(self.get_script.pop(0), "Service unavailable")
        found = self.requests.get(request.match_info["sid"])
        if found is None or not found.service_request_id:
            return _errors(404, "No such service request")
        return web.json_response(
            [
                {
                    "service_request_id": found.service_request_id,
                    "status": found.status,
                    "status_notes": found.status_notes or None,
                    "service_code": found.form["service_code"],
                    "lat": float(found.form["lat"]),
                    "long": float(found.form["long"]),
                    "media_url": found.form.get("media_url"),
                }
            ]
        )

    async def _get_token(self, request: web.Request) -> web.Response:
        self.calls.append(Call("GET", request.path, time.monotonic()))
        token = request.match_info["token"]
        for found in self.requests.values():
            if found.token == token:
                answer: dict[str, Any] = {"token": token}
                if found.service_request_id:
                    answer["service_request_id"] = found.service_request_id
                return web.json_response([answer])
        return _errors(404, "No such token")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/requests.json", self._post)
        app.router.add_get("/v2/requests/{sid}.json", self._get_request)
        app.router.add_get("/v2/tokens/{token}.json", self._get_token)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"


def _errors(status: int, description: str) -> web.Response:
    return web.json_response([{"code": status, "description": description}], status=status)
