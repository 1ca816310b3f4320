"""Tiled inference in the core: tile plans, seam merging, fairness per item, and untiled frames unchanged.

Seam tests use the colour-blob engine (a registered engine that detects painted patches exactly), because a seam
test must know where the object truly is; the real model runs tiled and untiled through the core below.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.config import load_config
from detector.inference.batcher import BatchingSettings, InferenceCore
from detector.inference.engine import BatchTimings, Engine, ModelSettings, build_engine
from detector.inference.tiling import (
    Tile,
    TilingPolicy,
    TilingSettings,
    TilingSpec,
    merge_tiles,
    plan_tiles,
)
from detector.ingest.decode import ImageLimits, dct_scale, decode_encoded, decode_scaled
from detector.types import DeliveryMode, Detections, Frame, ImageArray
from tests.conftest import jpeg
from tests.inference.test_batcher import RecordingEngine

RED = (0, 0, 255)


def _core(engine: Engine, tiling: TilingSettings, imgsz: int = 640, **batching: int) -> InferenceCore:
    settings = BatchingSettings(**{"max_batch": 8, "max_wait_ms": 1, "max_per_source": 8, "queue_size": 8, **batching})
    return InferenceCore(engine, settings, tiling=TilingPolicy(tiling, imgsz))


def _detect(core: InferenceCore, frames: Sequence[Frame]) -> list[Detections]:
    async def go() -> list[Detections]:
        results = await asyncio.gather(*(core.submit(f, DeliveryMode.LOSSLESS) for f in frames))
        return [r.detections for r in results]

    try:
        return asyncio.run(go())
    finally:
        core.stop()


@pytest.fixture
def blobs(tmp_path: Path) -> Engine:
    spec = tmp_path / "blobs.yaml"
    spec.write_text("name: blobs\nmin_area_px: 20\nclasses:\n  - {name: stall, bgr: [0, 0, 255]}\n")
    return build_engine("colour-blobs", ModelSettings(weights=spec, device="cpu"))


def test_tiles_cover_the_frame_with_at_least_the_overlap_and_add_the_whole_frame():
    spec = TilingSpec(tile_px=640, overlap_px=128)
    tiles = plan_tiles(1080, 1920, spec)
    assert tiles[-1] == Tile(0, 0, 1920, 1080, full=True)
    parts = tiles[:-1]
    assert len(parts) == 8  # 4 across, 2 down
    covered = np.zeros((1080, 1920), dtype=bool)
    for t in parts:
        assert (t.x1 - t.x0, t.y1 - t.y0) == (640, 640)
        covered[t.y0 : t.y1, t.x0 : t.x1] = True
    assert covered.all()
    xs = sorted({t.x0 for t in parts})
    assert all(640 - (b - a) >= 128 for a, b in itertools.pairwise(xs))
    assert plan_tiles(600, 600, spec) == [Tile(0, 0, 600, 600, full=True)], "a frame one tile covers is not cut"
    assert Tile(0, 0, 1920, 1080, full=True) not in plan_tiles(1080, 1920, TilingSpec(tile_px=640, overlap_px=64,
                                                                                       full_frame=False))  # fmt: skip


def test_auto_tiles_only_frames_more_than_twice_the_model_input_and_patterns_pick_sources():
    policy = TilingPolicy(TilingSettings(sources={"drone-*": "auto", "drone-7": "off"}), imgsz=416)
    assert len(policy.tiles("drone-1", 1080, 1920)) > 1
    assert policy.tiles("drone-1", 720, 800) == [Tile(0, 0, 800, 720, full=True)], "800 px is not twice 416"
    assert len(policy.tiles("drone-7", 1080, 1920)) == 1, "an exact id wins over a pattern"
    assert len(policy.tiles("cam-1", 1080, 1920)) == 1, "the default is off"


def test_tiling_settings_read_from_yaml_including_a_bare_off():
    config = load_config(
        None,
        environ={},
        overrides=[
            "tiling.default=off",
            "tiling.sources={drone-1: auto, cam-2: {tile_px: 800, overlap_px: 100}}",
        ],
    )
    assert config.tiling.default == "off"
    assert config.tiling.sources["drone-1"] == "auto"
    assert config.tiling.sources["cam-2"] == TilingSpec(tile_px=800, overlap_px=100)
    with pytest.raises(Exception, match="overlap_px"):
        load_config(None, environ={}, overrides=["tiling.default={tile_px: 100, overlap_px: 100}"])


def test_an_object_cut_by_seams_is_one_box_covering_it(blobs):
    image = np.full((1080, 1920, 3), 90, dtype=np.uint8)
    cv2.rectangle(image, (300, 500), (1199, 620), RED, -1)  # wider than a tile: no tile sees it whole
    cv2.rectangle(image, (1500, 100), (1560, 160), RED, -1)  # a second object, in one tile's overlap
    core = _core(blobs, TilingSettings(default=TilingSpec(tile_px=640, overlap_px=64, full_frame=False)))
    (dets,) = _detect(core, [Frame("drone-1", 0, 1.0, image)])
    boxes = sorted(dets.xyxy.tolist())
    assert len(boxes) == 2, f"one box per object expected, got {boxes}"
    np.testing.assert_allclose(boxes[0], [300, 500, 1200, 621], atol=1)
    np.testing.assert_allclose(boxes[1], [1500, 100, 1561, 161], atol=1)


def test_the_whole_frame_pass_and_the_tiles_agree_on_one_box(blobs):
    image = np.full((1080, 1920, 3), 90, dtype=np.uint8)
    cv2.rectangle(image, (560, 300), (1500, 900), RED, -1)  # larger than a tile
    core = _core(blobs, TilingSettings(default=TilingSpec(tile_px=640, overlap_px=128)))
    (dets,) = _detect(core, [Frame("drone-1", 0, 1.0, image)])
    assert len(dets) == 1
    np.testing.assert_allclose(dets.xyxy[0], [560, 300, 1501, 901], atol=1)


def test_two_neighbours_of_one_class_stay_two():
    whole = Tile(0, 0, 100, 100, full=True)
    dets = Detections(xyxy=[[10, 10, 40, 40], [38, 10, 70, 40]], confidence=[0.9, 0.8], class_id=[0, 0])
    tile = Tile(0, 0, 60, 100)
    merged = merge_tiles([(whole, dets), (tile, Detections())], 100, 100)
    assert len(merged) == 2


def test_tiles_are_batch_items_counted_against_their_source():
    engine = RecordingEngine()
    engine.gate.clear()
    tiling = TilingSettings(sources={"drone": TilingSpec(tile_px=64, overlap_px=8)})
    core = _core(engine, tiling, max_batch=4, max_per_source=2)
    drone = np.full((112, 176, 3), 1, dtype=np.uint8)  # 3 x 2 tiles + the whole frame = 7 items
    cam = np.full((48, 48, 3), 2, dtype=np.uint8)

    async def go() -> None:
        first = asyncio.create_task(core.submit(Frame("drone", 0, 1.0, drone), DeliveryMode.LOSSLESS))
        await asyncio.sleep(0.05)  # the worker holds the drone frame's first items
        second = asyncio.create_task(core.submit(Frame("cam", 0, 1.0, cam), DeliveryMode.LOSSLESS))
        await asyncio.sleep(0.05)
        engine.gate.set()
        await asyncio.gather(first, second)

    try:
        asyncio.run(go())
    finally:
        core.stop()
    # The recording engine names each input by its first pixel: the drone's are "1:1", the camera's "2:2".
    assert sum(len(b) for b in engine.batches) == 8
    assert all(b.count("1:1") <= 2 for b in engine.batches), f"more than max_per_source tiles: {engine.batches}"
    assert "2:2" in engine.batches[1], f"the camera waited behind the drone's tiles: {engine.batches}"


def test_tiling_off_gives_exactly_the_untiled_results_of_the_real_model(engine, street_photos):
    frames = [Frame("cam", i, float(i), im) for i, im in enumerate(street_photos[:4])]
    want = [engine.infer([f.image])[0][0] for f in frames]
    got = _detect(_core(engine, TilingSettings(), imgsz=320, max_batch=1, max_per_source=1), frames)
    assert sum(len(d) for d in want) > 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.xyxy, w.xyxy)
        np.testing.assert_array_equal(g.confidence, w.confidence)
        np.testing.assert_array_equal(g.class_id, w.class_id)


def test_the_real_model_tiled_finds_objects_once_in_frame_pixels(engine, street_photos):
    # Four real photos side by side, 2x2, then upscaled: a high-resolution frame with objects in every quadrant.
    top = np.hstack([cv2.resize(im, (640, 540)) for im in street_photos[:2]])
    bottom = np.hstack([cv2.resize(im, (640, 540)) for im in street_photos[2:4]])
    frame = cv2.resize(np.vstack([top, bottom]), (1920, 1620))
    tiling = TilingSettings(default=TilingSpec(tile_px=640, overlap_px=128))
    (dets,) = _detect(_core(engine, tiling, imgsz=320), [Frame("drone", 0, 1.0, frame)])
    assert len(dets) > 0
    assert np.all(dets.xyxy[:, [0, 2]] <= 1920) and np.all(dets.xyxy[:, [1, 3]] <= 1620)
    # No object twice: no two boxes of one class overlap by the merge threshold of the smaller one.
    for i in range(len(dets)):
        for j in range(i + 1, len(dets)):
            if dets.class_id[i] != dets.class_id[j]:
                continue
            a, b = dets.xyxy[i], dets.xyxy[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
            assert iw * ih / smaller < 0.5, f"boxes {a} and {b} are one object found twice"


def test_the_service_tiles_only_the_sources_its_settings_name(tmp_path):
    """Through the real gRPC service: one object across a seam comes back once, in the frame's pixels."""
    import grpc

    from detector.api._gen.streetwatch.v1 import ingest_pb2_grpc
    from detector.api.client import make_frame
    from tests.api.scripted import scripted_overrides, write_spec
    from tests.api.serving import serving

    spec = write_spec(tmp_path / "blobs.yaml")
    overrides = [
        *scripted_overrides(spec, tmp_path / "data"),
        "server.port=0",
        "tiling.sources={drone-1: {tile_px: 640, overlap_px: 64, full_frame: false}}",
    ]
    config = load_config(None, environ={}, overrides=overrides)
    engine = build_engine("colour-blobs", ModelSettings(weights=spec, device="cpu"))
    image = np.full((1080, 1920, 3), 90, dtype=np.uint8)
    cv2.rectangle(image, (300, 500), (1199, 620), RED, -1)

    def items_run(service: object) -> float:
        histogram = service.metrics.batch_size.collect()  # type: ignore[attr-defined]
        return sum(s.value for m in histogram for s in m.samples if s.name.endswith("_sum"))

    async def go() -> list[list[tuple[float, float, float, float]]]:
        async with serving(config, engine) as (service, target), grpc.aio.insecure_channel(target) as channel:
            stub = ingest_pb2_grpc.IngestStub(channel)
            out = []
            for source, items in (("drone-1", 8), ("cam-1", 1)):  # 4 x 2 tiles, no whole-frame pass; untiled
                before = items_run(service)
                result = await stub.Detect(make_frame(source, 1, 1.76e9, image=image))
                assert not result.HasField("error"), result.error.message
                assert items_run(service) - before == items, f"{source}: model inputs run"
                out.append([(d.box.x1, d.box.y1, d.box.x2, d.box.y2) for d in result.detections])
            return out

    tiled, whole = asyncio.run(go())
    assert len(tiled) == 1 and len(whole) == 1
    np.testing.assert_allclose(tiled[0], [300, 500, 1200, 621], atol=1)
    np.testing.assert_allclose(whole[0], tiled[0], atol=1)


class OneMsEngine(Engine):
    """Finds nothing; every batch reports 1 ms of forward time, whatever its size."""

    def __init__(self) -> None:
        self.name, self.version, self.class_names, self.device, self.backend = "1ms", "0", ["x"], "cpu", "1ms"

    def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
        return [Detections() for _ in images], BatchTimings(forward_ms=1.0)


def test_a_tiled_frame_reports_the_time_of_each_batch_it_ran_in_once():
    tiling = TilingSettings(sources={"drone": TilingSpec(tile_px=64, overlap_px=8)})
    core = _core(OneMsEngine(), tiling, max_batch=4, max_per_source=4)
    drone = np.zeros((112, 176, 3), dtype=np.uint8)  # 7 items: batches of 4 and 3

    async def go() -> float:
        return (await core.submit(Frame("drone", 0, 1.0, drone), DeliveryMode.LOSSLESS)).timings.forward_ms

    try:
        assert asyncio.run(go()) == 2.0
    finally:
        core.stop()


# Reduced decoding: a JPEG decoded at 1/scale is cut into the same tiles (in full-frame pixels) and its boxes come
# back in full-frame pixels.

_LIMITS = ImageLimits(max_pixels=4096 * 4096, max_side_px=8192)
_OBJECT = (700, 500, 780, 580)  # x1 y1 x2 y2 of a red square, full-frame pixels (x2, y2 exclusive)


def _red_square_jpeg(width: int = 1920, height: int = 1080) -> bytes:
    image = np.full((height, width, 3), 90, dtype=np.uint8)
    x1, y1, x2, y2 = _OBJECT
    image[y1:y2, x1:x2] = RED  # its edges fall on even pixels: exact at 1/2 (measured: found to the pixel)
    return jpeg(image, quality=95)


def _red_box(crop: ImageArray) -> Detections:
    """The red square's box in ``crop``'s own pixels, found exactly (no model), or nothing."""
    mask = (crop[:, :, 2] > 160) & (crop[:, :, 1] < 90) & (crop[:, :, 0] < 90)
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return Detections()
    box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    return Detections(xyxy=[box], confidence=[0.5], class_id=[0], track_id=[7])


def test_a_tiled_frame_decoded_at_half_puts_boxes_back_in_full_frame_tile_pixels():
    policy = TilingPolicy(TilingSettings(default=TilingSpec(tile_px=960, overlap_px=192)), imgsz=416)
    data = _red_square_jpeg()
    image, scale = decode_scaled(data, _LIMITS, lambda w, h: policy.decode_scale("drone-1", w, h))
    assert (scale, image.shape) == (2, (540, 960, 3))
    tiles = policy.tiles("drone-1", 1080, 1920)
    assert len(tiles) == 7  # 3 x 2 tiles and the whole frame
    parts = []
    for tile in tiles:
        crop = tile.crop(image, scale)
        if not tile.full:
            assert crop.shape[:2] == ((tile.y1 - tile.y0) // 2, (tile.x1 - tile.x0) // 2)
        found = tile.unscale(_red_box(crop), scale, 1080, 1920)
        parts.append((tile, found))
        inside = tile.x0 <= _OBJECT[0] and tile.y0 <= _OBJECT[1] and _OBJECT[2] <= tile.x1 and _OBJECT[3] <= tile.y1
        if inside:  # seen whole: the box is the object's, in this tile's full-resolution pixels
            want = [_OBJECT[0] - tile.x0, _OBJECT[1] - tile.y0, _OBJECT[2] - tile.x0, _OBJECT[3] - tile.y0]
            np.testing.assert_allclose(found.xyxy[0], want, atol=0.5)
            assert (found.confidence.tolist(), found.class_id.tolist(), found.track_id.tolist()) == ([0.5], [0], [7])
    merged = merge_tiles(parts, 1080, 1920)
    assert len(merged) == 1
    np.testing.assert_allclose(merged.xyxy[0], _OBJECT, atol=0.5)


def test_a_tile_starting_on_an_odd_pixel_is_cut_from_the_reduced_pixel_that_covers_it():
    image, scale = decode_scaled(_red_square_jpeg(), _LIMITS, lambda _w, _h: 2)
    tile = Tile(481, 121, 1441, 1081)  # reduced pixel 240 covers full pixels 480 and 481
    crop = tile.crop(image, scale)
    assert crop.shape[:2] == (540 - 60, 721 - 240)
    found = tile.unscale(_red_box(crop), scale, 1080, 1920)
    want = [_OBJECT[0] - 481, _OBJECT[1] - 121, _OBJECT[2] - 481, _OBJECT[3] - 121]
    np.testing.assert_allclose(found.xyxy[0], want, atol=0.5)  # one pixel off if the crop's corner were 481


def test_unscale_keeps_boxes_inside_the_frame_and_leaves_full_resolution_boxes_alone():
    # A 1921x1081 frame decoded at 1/2 is 961x541: its last reduced pixel covers full pixel 1920 and one beyond.
    det = Detections(xyxy=[[400, 400, 481, 481]], confidence=[0.5], class_id=[3])
    last = Tile(961, 121, 1921, 1081)
    np.testing.assert_array_equal(last.unscale(det, 2, 1081, 1921).xyxy, [[799, 799, 960, 960]])
    whole = Tile(0, 0, 1921, 1081, full=True)
    everything = Detections(xyxy=[[-1, 0, 961, 541]], confidence=[0.5], class_id=[3])
    np.testing.assert_array_equal(whole.unscale(everything, 2, 1081, 1921).xyxy, [[0, 0, 1921, 1081]])
    assert last.unscale(det, 1, 1081, 1921) is det


@pytest.mark.parametrize(
    ("tiling", "imgsz", "size", "scale"),
    [
        ("off", 416, (1920, 1080), 4),
        ("off", 640, (1920, 1080), 2),
        ("off", 320, (3840, 2160), 8),
        ("off", 416, (800, 600), 1),
        ("auto", 416, (1920, 1080), 1),  # tiled with 416 px tiles seen at full resolution
        ("auto", 416, (832, 468), 2),  # not more than twice the model input: untiled, decoded at half
        ("auto", 416, (834, 470), 1),  # just larger: tiled, so whole
        ("960:192", 416, (1920, 1080), 2),  # a 960 px tile at half is 480 >= 416
        ("960:192", 640, (1920, 1080), 1),  # at half it would be 480 < 640
        ("2048:256", 416, (1920, 1080), 4),  # one tile covers the frame: untiled
        ("1280:128", 320, (3840, 2160), 4),
    ],
)
def test_decode_scale_keeps_what_the_model_needs_of_the_frame_and_of_each_tile(
    tiling: str, imgsz: int, size: tuple[int, int], scale: int
):
    choice = tiling if tiling in ("off", "auto") else TilingSpec.parse(tiling)
    policy = TilingPolicy(TilingSettings(sources={"drone-1": choice}), imgsz)
    assert policy.decode_scale("drone-1", *size) == scale
    assert policy.decode_scale("cam-1", *size) == dct_scale(*size, imgsz), "other sources are untiled"


def test_the_core_finds_the_same_boxes_in_a_reduced_frame_as_in_the_full_one(blobs):
    data = _red_square_jpeg()
    tiling = TilingSettings(sources={"drone-1": TilingSpec(tile_px=960, overlap_px=192)})
    policy = TilingPolicy(tiling, 416)
    full = decode_encoded(data, _LIMITS)
    frames = [Frame("cam-1", 0, 1.0, full), Frame("drone-1", 0, 1.0, full)]
    for source in ("cam-1", "drone-1"):
        image, scale = decode_scaled(data, _LIMITS, lambda w, h, s=source: policy.decode_scale(s, w, h))
        assert scale == {"cam-1": 4, "drone-1": 2}[source]
        frames.append(Frame(source, 1, 2.0, image, scale=scale, full_size=(1920, 1080), jpeg=data))
    found = _detect(_core(blobs, tiling, imgsz=416), frames)
    for frame, dets in zip(frames, found, strict=True):
        assert len(dets) == 1, f"{frame.source_id} at 1/{frame.scale}: {dets.xyxy}"
        np.testing.assert_allclose(dets.xyxy[0], _OBJECT, atol=frame.scale, err_msg=f"1/{frame.scale}")
