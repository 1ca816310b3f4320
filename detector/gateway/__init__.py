"""`detector gateway`: an edge process that pulls cameras (RTSP, HTTP, files: anything PyAV opens) and streams
their frames to a StreetWatch service, as a camera gateway vendor would ship it.

- ``config``: the YAML/flag settings (pydantic, ``extra="forbid"``).
- ``camera``: one thread per camera: PyAV decoding, capture time from the stream's timestamps, the fps cap,
  reconnects with backoff; it posts events (dataclasses), never proto.
- ``gateway``: the asyncio side: the outbox, one StreamFrames call (through ``detector.api.gateway_link``),
  resends after a service restart, and the tally that puts every frame read into exactly one bucket.
- ``summary``, ``metrics``, ``cli``.

Nothing here imports gRPC or the generated proto code: that lives in ``detector/api``.
"""
