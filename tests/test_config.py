"""Settings: defaults < file < environment < flags; unknown or invalid keys are named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import DEFAULT_WEIGHTS, ConfigError, load_config


def test_embedded_defaults_serve_on_loopback_with_the_committed_model() -> None:
    config = load_config(None, environ={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 50051)
    assert config.model.weights == DEFAULT_WEIGHTS and config.model.weights.is_file()


def test_layers_override_in_order(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("server: {port: 6000, grace_s: 3}\nbatching: {max_batch: 16}\nmodel: {weights: m.pt}\n")
    env = {"STREETWATCH__SERVER__PORT": "7000", "STREETWATCH__INGEST__SOURCES": "[a, b]", "HOME": "/x"}
    config = load_config(file, environ=env, overrides=["server.port=8000"])
    assert config.server.port == 8000  # flag beats environment beats file
    assert config.server.grace_s == 3  # from the file
    assert config.batching.max_batch == 16
    assert config.ingest.sources == ["a", "b"]  # environment, parsed as YAML
    assert config.model.weights == tmp_path / "m.pt"  # relative to the file


@pytest.mark.parametrize(
    ("overrides", "environ", "message"),
    [
        (["server.prot=1"], {}, "server.prot: unknown setting"),
        (["nonsense.key=1"], {}, "nonsense: unknown setting"),
        (["server.port=70000"], {}, "server.port: Input should be less than or equal to 65535"),
        (["batching.max_batch=x"], {}, "batching.max_batch: Input should be a valid integer"),
        (["model.backend=tensorflow"], {}, "model.backend"),
        (["batching.max_per_source=9"], {}, "max_per_source (9) cannot exceed batching.max_batch (8)"),
        ([], {"STREETWATCH__LOGGING__COLOUR": "1"}, "logging.colour: unknown setting"),
        (["server.port"], {}, "--set expects section.key=value"),
        (["server.port.x=1"], {}, "server.port: Input should be a valid integer"),
    ],
)
def test_bad_settings_are_rejected_naming_the_key(overrides: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, environ=environ, overrides=overrides)
    assert message in str(err.value)


@pytest.mark.parametrize("text", ["[1, 2]", "server: [", "just a string"])
def test_a_config_file_that_is_not_a_mapping_is_rejected(tmp_path: Path, text: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config(file, environ={})
