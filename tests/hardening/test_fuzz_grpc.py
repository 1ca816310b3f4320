"""Fuzzed frames over a real StreamFrames call: every frame gets an answer, bad ones a per-frame error code, the
stream stays open, the errors are counted, and the service keeps serving good frames afterwards.

The colour-blob engine stands in for the model (the decode and validation paths are under test, not YOLO).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api._gen.streetwatch.v1 import ingest_pb2_grpc
from detector.config import load_config
from detector.server import Service, start_service
from tests.api.scripted import GREEN, scene, scripted_overrides, write_spec
from tests.conftest import LoopThread, jpeg
from tests.hardening.test_fuzz import SEEDS, mutated

EXAMPLES = max(10, int(os.environ.get("FUZZ_EXAMPLES", "150")) // 5)
GOOD = jpeg(scene([(GREEN, (10, 10, 40, 40))]))
_seq = itertools.count(1)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    spec = write_spec(Path(tmp) / "blobs.yaml")
    overrides = ["server.port=0", "ingest.max_pixels=1000000", *scripted_overrides(spec, Path(tmp) / "data")]
    loop = LoopThread()
    svc = loop.run(start_service(load_config(None, environ={}, overrides=overrides)))
    yield svc, f"127.0.0.1:{svc.port}"
    loop.run(svc.stop(1))
    loop.close()


SECONDS = st.integers(-(2**40), 2**40)
TELEMETRY = st.dictionaries(
    st.sampled_from([f.name for f in pb.Telemetry.DESCRIPTOR.fields]),
    st.floats(allow_nan=True, allow_infinity=True),
    max_size=4,
)


@st.composite
def frames(draw: st.DrawFn) -> pb.Frame:
    frame = pb.Frame(
        source_id=draw(st.one_of(st.just("fuzz-cam"), st.text(max_size=300))),
        seq=next(_seq) if draw(st.booleans()) else draw(st.integers(0, 2**63 - 1)),
        delivery_mode=draw(st.sampled_from([pb.LOSSLESS, pb.LIVE, 7])),
    )
    if draw(st.booleans()):
        frame.capture_time.seconds = draw(st.one_of(st.integers(1_700_000_000, 1_800_000_000), SECONDS))
        frame.capture_time.nanos = draw(st.integers(0, 10**9 - 1))
    kind = draw(st.sampled_from(["good", "mutated", "bytes", "raw", "none"]))
    if kind == "good":
        frame.encoded = GOOD
    elif kind == "mutated":
        frame.encoded = draw(mutated(SEEDS))
    elif kind == "bytes":
        frame.encoded = draw(st.binary(max_size=256))
    elif kind == "raw":
        w, h = draw(st.integers(0, 5000)), draw(st.integers(0, 5000))
        size = draw(st.one_of(st.just(w * h * 3), st.integers(0, 4096))) if w * h < 200_000 else 16
        frame.raw.width, frame.raw.height, frame.raw.data = w, h, bytes(min(size, 600_000))
        frame.raw.pixel_format = draw(st.sampled_from([pb.BGR8, pb.RGB8, 0, 9]))
    if draw(st.booleans()):
        frame.telemetry.CopyFrom(pb.Telemetry(**draw(TELEMETRY)))
    return frame


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(frames(), min_size=1, max_size=12))
def test_fuzzed_streams_are_answered_frame_by_frame_and_the_service_survives(service, batch):
    svc, target = service
    errors_before = sum(s.value for m in svc.metrics.frame_errors.collect() for s in m.samples if "total" in s.name)
    good = pb.Frame(source_id="health-cam", seq=next(_seq), encoded=GOOD, delivery_mode=pb.LOSSLESS)
    good.capture_time.seconds = 1_760_000_000 + good.seq
    with grpc.insecure_channel(target) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)
        results = list(stub.StreamFrames(iter([*batch, good]), timeout=60))
        good.seq = next(_seq)
        after = stub.Detect(good, timeout=30)
    answered_with_error = [r for r in results if r.HasField("error")]
    # LIVE frames may be dropped under load (answered DROPPED); every frame still gets exactly one answer.
    assert len(results) == len(batch) + 1
    assert not results[-1].HasField("error") and results[-1].source_id == "health-cam"
    assert all(r.error.code != pb.INTERNAL for r in answered_with_error), answered_with_error
    assert all(r.error.message for r in answered_with_error)
    assert not after.HasField("error") and [d.label for d in after.detections] == ["garbage"]
    errors_after = sum(s.value for m in svc.metrics.frame_errors.collect() for s in m.samples if "total" in s.name)
    assert errors_after - errors_before >= len(answered_with_error), "every refused frame is counted"
