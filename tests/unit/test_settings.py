"""Settings: every documented variable parses; nested sections; bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mmlw.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "settings.example.env"


def example_variables() -> dict[str, str]:
    out = {}
    for line in EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name] = value
    return out


def test_the_example_env_documents_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = example_variables()
    assert {"MMLW_BROKER__URL", "MMLW_DATABASE_URL", "MMLW_API__KEYS"} - set(variables) <= {
        "MMLW_DATABASE_URL"  # commented out: its default is the SQLite file
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.broker.url == "memory://"
    assert settings.api.keys == []
    assert settings.models.threshold_quantile == 0.995


def test_defaults_live_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'mmlw.db'}"
    assert settings.resolved_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.uses_local_broker


def test_nested_variables_and_secret_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMLW_BROKER__URL", "amqp://u:p@h:5672//")
    monkeypatch.setenv("MMLW_API__KEYS", '["k1", "k2"]')
    settings = Settings()
    assert settings.broker.url == "amqp://u:p@h:5672//"
    assert [k.get_secret_value() for k in settings.api.keys] == ["k1", "k2"]
    assert "k1" not in repr(settings)


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMLW_BROKER__NAMESPACE", "Bad Namespace!")
    with pytest.raises(ValidationError, match="namespace"):
        Settings()


def test_production_needs_a_model_signing_key(tmp_path: Path) -> None:
    keys = ["k" * 16]
    unsigned = Settings(environment="production", data_dir=tmp_path, api={"keys": keys})
    with pytest.raises(ValueError, match="MMLW_MODELS__SIGNING_KEY"):
        unsigned.model_signing_key()  # a process that never loads models may lack it
    short = Settings(
        environment="production",
        data_dir=tmp_path,
        api={"keys": keys},
        models={"signing_key": "too-short"},
    )
    with pytest.raises(ValueError, match="MMLW_MODELS__SIGNING_KEY"):
        short.model_signing_key()
    assert not (tmp_path / "model-signing.key").exists()  # never a random key in production
    ok = Settings(
        environment="production",
        data_dir=tmp_path,
        api={"keys": keys},
        models={"signing_key": "s" * 32},
    )
    assert ok.model_signing_key() == b"s" * 32


def test_outside_production_one_random_key_per_data_dir(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).model_signing_key()
    assert len(first) >= 32 and Settings(data_dir=tmp_path).model_signing_key() == first
    assert (tmp_path / "model-signing.key").stat().st_mode & 0o077 == 0
    assert Settings(data_dir=tmp_path / "other").model_signing_key() != first
