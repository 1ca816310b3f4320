"""Property-based fuzzing of every path that takes bytes or numbers from outside.

Each property says what a caller may rely on: the input is either accepted with a sane result or refused with
the documented error, and nothing else ever escapes. The suite runs a bounded corpus; set ``FUZZ_EXAMPLES``
(examples per property) for a longer run, e.g. ``FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/hardening``.
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from detector.api import convert
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.config import ConfigError, ServiceConfig, load_config
from detector.geo.errors import SrtParseError
from detector.geo.srt import parse_srt
from detector.ingest.decode import FrameRejected, ImageLimits, RejectCode, decode_encoded, decode_raw
from tests.conftest import SHARED

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
LIMITS = ImageLimits(max_pixels=4096 * 4096, max_side_px=8192)


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return [cv2.imencode(ext, image)[1].tobytes() for ext in (".jpg", ".png")]


SEEDS = _seed_images()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A valid file with bytes flipped, inserted, deleted or truncated: the shapes real corruption takes."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


def _check_decoded(data: bytes) -> None:
    try:
        image = decode_encoded(data, LIMITS)
    except FrameRejected as exc:
        assert exc.code in {RejectCode.UNDECODABLE, RejectCode.INVALID_IMAGE, RejectCode.IMAGE_TOO_LARGE}
        assert exc.message
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= LIMITS.max_pixels


@FUZZ
@given(st.one_of(st.binary(max_size=2048), mutated(SEEDS)))
def test_the_encoded_frame_decoder_accepts_or_refuses_with_a_code(data):
    _check_decoded(data)


@FUZZ
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1), st.sampled_from([0, 1]))
def test_a_forged_header_size_is_refused_before_any_pixels_are_decoded(width, height, which):
    # Rewrite the size in the header of a small valid image: an absurd claim must never reach the decoder.
    data = bytearray(SEEDS[1])  # PNG: IHDR width/height at bytes 16..24
    if which == 1:
        data = bytearray(SEEDS[0])
        sof = data.find(b"\xff\xc0")
        data[sof + 5 : sof + 9] = bytes([(height >> 8) & 255, height & 255, (width >> 8) & 255, width & 255])
        width, height = width & 0xFFFF, height & 0xFFFF
    else:
        data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    try:
        image = decode_encoded(bytes(data), LIMITS)
    except FrameRejected as exc:
        if width > LIMITS.max_side_px or height > LIMITS.max_side_px:
            assert exc.code in {RejectCode.IMAGE_TOO_LARGE, RejectCode.INVALID_IMAGE}
        return
    assert (image.shape[1], image.shape[0]) == (width, height)


@FUZZ
@given(st.integers(-10, 100_000), st.integers(-10, 100_000), st.booleans(), st.integers(0, 5000))
def test_raw_images_of_any_claimed_size_are_accepted_exactly_or_refused(width, height, rgb, length):
    data = bytes(length)
    try:
        image = decode_raw(width, height, rgb, data, LIMITS)
    except FrameRejected as exc:
        assert exc.code in {RejectCode.INVALID_IMAGE, RejectCode.IMAGE_TOO_LARGE}
        return
    assert image.shape == (height, width, 3) and length == width * height * 3


ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e3, 1e3))
TELEMETRY_FIELDS = [f.name for f in pb.Telemetry.DESCRIPTOR.fields]


@FUZZ
@given(st.dictionaries(st.sampled_from(TELEMETRY_FIELDS), ANY_FLOAT))
def test_telemetry_with_nan_inf_or_out_of_range_values_is_refused_per_frame(values):
    frame = pb.Frame(source_id="drone-1", telemetry=pb.Telemetry(**values))
    try:
        telemetry = convert.telemetry(frame)
    except FrameRejected as exc:
        assert exc.code is RejectCode.INVALID_FRAME and "telemetry" in exc.message
        return
    assert telemetry is not None
    for value in vars(telemetry).values():
        assert value is None or math.isfinite(value)
    assert telemetry.lat is None or -90 <= telemetry.lat <= 90
    assert telemetry.lon is None or -180 <= telemetry.lon <= 180


def _srt_seeds() -> list[bytes]:
    folder = SHARED / "fixtures" / "dji-srt"
    files = sorted(folder.glob("*.[sS][rR][tT]")) if folder.exists() else []
    seeds = [f.read_bytes()[:4000] for f in files]
    return seeds or [b"1\r\n00:00:00,000 --> 00:00:01,000\r\n[latitude: 22.5] [longitude: 113.9] [rel_alt: 50]\r\n"]


SRT_SEEDS = _srt_seeds()


LONE_LONGITUDE = b"1\n00:00:00,000 --> 00:00:00,020\n[\x00atitude: 3.41531] [longitude: -337] [rel_alt: 5]\n"


@FUZZ
@given(st.one_of(mutated(SRT_SEEDS), st.text(max_size=500), st.binary(max_size=500)))
@example(LONE_LONGITUDE)  # found by a 5000-example run: a longitude whose latitude was damaged escaped the check
def test_the_srt_parser_returns_cues_with_warnings_or_a_clear_error(data):
    try:
        result = parse_srt(data)
    except SrtParseError as exc:
        assert str(exc)
        return
    assert result.cues
    for cue in result.cues:
        assert cue.lat is None or -90 <= cue.lat <= 90, "a coordinate is never invented out of range"
        assert cue.lon is None or -180 <= cue.lon <= 180
        assert (cue.lat is None) == (cue.lon is None), "half a position is no position"
        assert math.isfinite(cue.start_s) and cue.end_s >= 0


KEYS = [
    "server.port",
    "server.host",
    "batching.max_batch",
    "batching.max_wait_ms",
    "model.conf",
    "model.imgsz",
    "ingest.max_pixels",
    "store.retention_max_age_s",
    "rules.default_source.dwell_s",
    "nonsense.key",
    "server",
]
VALUES = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True).map(str),
    st.text(max_size=30),
    st.sampled_from(["[]", "{}", "{a: 1}", "null", "true", "-1", "1e309", "'", "[1, [2"]),
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4))
def test_the_config_loader_accepts_valid_settings_or_names_the_bad_key(pairs):
    overrides = [f"{k}={v}" for k, v in pairs]
    try:
        config = load_config(None, environ={}, overrides=overrides)
    except ConfigError as exc:
        assert any(k.split(".")[0] in str(exc) for k, _ in pairs), str(exc)
        return
    assert isinstance(config, ServiceConfig)
    assert 0 <= config.server.port <= 65535 and config.batching.max_batch >= 1


@pytest.mark.parametrize("name", [p.name for p in sorted((SHARED / "fixtures" / "dji-srt").glob("*.[sS][rR][tT]"))])
def test_a_fixture_truncated_at_any_line_yields_a_prefix_of_its_cues_and_invents_nothing(name):
    lines = (SHARED / "fixtures" / "dji-srt" / name).read_bytes().splitlines(keepends=True)[:400]
    try:
        whole_file = parse_srt(b"".join(lines))
    except SrtParseError:
        pytest.skip(f"{name} is a fixture that fails as a whole (see its SOURCE.md)")
    full = {c.index: c for c in whole_file.cues}
    for cut in range(1, len(lines), 7):
        try:
            partial = parse_srt(b"".join(lines[:cut]))
        except SrtParseError as exc:
            assert str(exc)
            continue
        for cue in partial.cues:
            whole = full[cue.index]
            for field in ("lat", "lon", "rel_alt_m", "abs_alt_m", "gimbal_pitch_deg", "focal_len_mm"):
                value = getattr(cue, field)
                if field in ("lat", "lon") and partial.gps_order != whole_file.gps_order:
                    continue
                assert value is None or value == getattr(whole, field), (name, cut, cue.index, field)
