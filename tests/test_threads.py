"""The thread budget: how the service shares its cores between decoding, the model and the event loop."""

from __future__ import annotations

import numpy as np
import pytest

from detector.config import DEFAULT_WEIGHTS, ConfigError, load_config
from detector.inference.engine import Engine, InferenceThreads, ModelSettings, build_engine
from detector.threads import ThreadSettings, available_cores, plan_threads


@pytest.mark.parametrize(
    ("cores", "device", "workers", "inference", "decode"),
    [
        (2, "cpu", 2, 1, 1),  # one single-threaded worker per core, decoding a quarter of the cores but at least one
        (16, "cpu", 16, 1, 4),
        (2, "cuda", 1, 2, 1),  # the GPU runs the model: one worker, 2 launching threads, decoding the rest
        (16, "cuda", 1, 2, 14),
        (16, "cuda:1", 1, 2, 14),
    ],
)
def test_the_budget_follows_the_cores_and_the_device(
    cores: int, device: str, workers: int, inference: int, decode: int
) -> None:
    budget = plan_threads(ThreadSettings(cores=cores), device)
    assert (budget.cores, budget.inference_workers, budget.inference, budget.decode) == (
        cores,
        workers,
        inference,
        decode,
    )
    assert (budget.inference_inter_op, budget.spin, budget.opencv) == (1, False, 1)
    assert device.split(":")[0] in budget.why and "set in threads: cores" in budget.why
    log = budget.as_log()
    assert (log["decode_threads"], log["inference_threads"], log["event_loop_threads"]) == (decode, inference, 1)


def test_without_cores_set_the_budget_plans_for_the_cores_this_process_may_use() -> None:
    budget = plan_threads(ThreadSettings(), "cpu")
    assert budget.cores == available_cores() >= 1
    assert budget.inference_workers == budget.cores and budget.inference == 1
    assert budget.decode == max(1, budget.cores // 4)
    assert "set in threads" not in budget.why


def test_settings_in_the_threads_section_win_over_the_plan() -> None:
    config = load_config(
        None,
        environ={"STREETWATCH__THREADS__DECODE": "3"},
        overrides=["threads.cores=16", "threads.inference=5", "threads.inference_inter_op=2", "threads.spin=true",
                   "threads.opencv=0"],
    )  # fmt: skip
    for device in ("cpu", "cuda"):
        budget = plan_threads(config.threads, device)
        assert (budget.cores, budget.decode, budget.inference) == (16, 3, 5), device
        assert (budget.inference_inter_op, budget.spin, budget.opencv) == (2, True, 0)
        assert "set in threads: cores, decode, inference" in budget.why


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("threads.decode=0", "threads.decode: Input should be greater than or equal to 1"),
        ("threads.cores=0", "threads.cores: Input should be greater than or equal to 1"),
        ("threads.inference=-2", "threads.inference: Input should be greater than or equal to 1"),
        ("threads.inference_inter_op=many", "threads.inference_inter_op: Input should be a valid integer"),
        ("threads.opencv=-1", "threads.opencv: Input should be greater than or equal to 0"),
        ("threads.decoders=2", "threads.decoders: unknown setting"),
    ],
)
def test_a_bad_threads_setting_is_rejected_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, overrides=[override])
    assert message in str(err.value)


@pytest.fixture(scope="module")
def onnx_default() -> Engine:
    """The committed model on onnxruntime with the library's own thread defaults (no budget)."""
    return build_engine("onnx", ModelSettings(weights=DEFAULT_WEIGHTS, device="cpu"))


@pytest.mark.parametrize(("intra", "spin"), [(1, False), (2, True)])
def test_an_onnx_engine_runs_with_the_budgets_threads(
    intra: int, spin: bool, onnx_default: Engine, street_photos: list[np.ndarray]
) -> None:
    settings = ModelSettings(weights=DEFAULT_WEIGHTS, device="cpu")
    engine = build_engine("onnx", settings, InferenceThreads(intra_op=intra, inter_op=1, spin=spin))
    session = engine._model.backend.session  # type: ignore[attr-defined]
    options = session.get_session_options()
    assert options.intra_op_num_threads == intra and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spin else "0")
    assert session.get_providers() == ["CPUExecutionProvider"]
    default = onnx_default._model.backend.session.get_session_options()  # type: ignore[attr-defined]
    assert default.intra_op_num_threads == 0, "without a budget onnxruntime sizes itself"
    # The resized session is the model that runs, and it is the same model: the same boxes on real photos.
    got, _ = engine.infer(street_photos[:3])
    want, _ = onnx_default.infer(street_photos[:3])
    assert sum(len(d) for d in want) > 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.xyxy, w.xyxy, atol=0.01)
        np.testing.assert_array_equal(g.class_id, w.class_id)
