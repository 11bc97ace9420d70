"""Safety thresholds per clinic (INFUSION_FHIR_SAFETY_THRESHOLDS): parsed into the mapping config, an
unacknowledged weakening or a rule switched off refused at start in one line, every weakened rule logged
once at start (API lifespan, batch and map CLIs), no PHI in the log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app as cli
from service.instruments import FlagOverride, ItemOverride
from service.settings import Settings
from tests.unit.examples import BASE as EXAMPLES

ENV = "INFUSION_FHIR_SAFETY_THRESHOLDS"
STRICTER = [{"instrument": "madrs", "item": "10", "at_least": 1}, {"instrument": "cssrs_screen", "flag_at": "low"}]
WEAKER_ACKED = [{"instrument": "phq9", "item": "9", "at_least": 2, "acknowledge_less_sensitive": True}]
WEAKER_UNACKED = [{"instrument": "phq9", "item": "9", "at_least": 2}]


def settings(entries: object) -> Settings:
    return Settings(FHIR_BASE_URL="http://fhir.test/fhir", safety_thresholds=json.dumps(entries))


def test_no_setting_is_the_sheets_defaults() -> None:
    config = Settings(FHIR_BASE_URL="http://fhir.test/fhir").mapping_config()
    assert config.safety_overrides == ()
    assert config.thresholds.weakened == ()
    assert config.thresholds.of("phq9").rules[0].at_least == 1


def test_the_setting_is_read_from_the_environment_into_the_mapping_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, json.dumps(STRICTER))
    config = Settings().mapping_config()
    assert config.safety_overrides == (ItemOverride("madrs", "10", 1), FlagOverride("cssrs_screen", "low"))
    assert config.thresholds.of("madrs").rules[0].at_least == 1
    assert config.thresholds.of("cssrs_screen").flag_at == "low"
    assert config.thresholds.weakened == ()  # more sensitive: nothing to name


def test_an_acknowledged_weakening_applies_and_is_named() -> None:
    config = settings(WEAKER_ACKED).mapping_config()
    (weakened,) = config.thresholds.weakened
    assert (weakened.instrument, weakened.rule, weakened.default, weakened.configured) == ("phq9", "9", 1, 2)


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        (
            WEAKER_UNACKED,
            "safety threshold phq9 9: less sensitive than the default (1): set acknowledge_less_sensitive",
        ),
        (
            [{"instrument": "madrs", "item": "10", "at_least": 7, "acknowledge_less_sensitive": True}],
            "cannot be switched off",
        ),
        ([{"instrument": "cssrs_screen", "flag_at": "high"}], "acknowledge_less_sensitive"),
        ([{"instrument": "gad7", "item": "1", "at_least": 1}], "not a safety item"),
        ([{"instrument": "madrs", "item": "10"}], "entry 0: must have exactly at_least, instrument, item"),
        ([{"instrument": "madrs", "item": "10", "at_least": "2"}], "at_least must be an integer"),
        ({"instrument": "madrs"}, "must be a JSON list"),
    ],
)
def test_a_threshold_that_cannot_apply_stops_the_start_in_one_line(entries: object, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(entries)
    (error,) = refused.value.errors()
    assert error["loc"] == ("safety_thresholds",)
    assert ENV in error["msg"] and says in error["msg"]
    assert "\n" not in error["msg"]


def test_text_that_is_not_json_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match=f"{ENV} is not valid JSON"):
        Settings(FHIR_BASE_URL="http://fhir.test/fhir", safety_thresholds="[{madrs")


def _events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "safety.thresholds"]


def test_the_api_logs_each_weakened_rule_once_at_start(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infusion_fhir")
    app = create_app(settings(WEAKER_ACKED), transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with TestClient(app) as api:
        api.get("/healthz")
        api.get("/healthz")
    (event,) = _events(caplog)
    assert event.levelno == logging.WARNING
    assert event.overrides == 1  # type: ignore[attr-defined]
    (rule,) = event.weakened  # type: ignore[attr-defined]
    assert (rule["instrument"], rule["rule"], rule["default"], rule["configured"]) == ("phq9", "9", 1, 2)
    assert "PHQ-9 item 9 >= 2 (default PHQ-9 item 9 >= 1), less sensitive" in rule["description"]


def test_the_api_on_the_defaults_says_so_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infusion_fhir")
    app = create_app(settings([]), transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with TestClient(app):
        pass
    (event,) = _events(caplog)
    assert event.levelno == logging.INFO and event.weakened == []  # type: ignore[attr-defined]


def _record_file(tmp_path: Path) -> Path:
    record = {**EXAMPLES["assessment"], "key": "t-1"}
    record.pop("session_key", None)
    path = tmp_path / "in.ndjson"
    path.write_bytes(orjson.dumps(record) + b"\n")
    return path


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 always keeps stderr apart
        return CliRunner()


@pytest.mark.parametrize("command", ["map", "sync"])
def test_the_clis_log_the_weakened_rule_at_start(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, json.dumps(WEAKER_ACKED))
    args = [command, str(_record_file(tmp_path))]
    if command == "sync":
        args += ["--dry-run", "--rejects", str(tmp_path / "r.ndjson"), "--report", str(tmp_path / "r.json")]
    result = _runner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if '"safety.thresholds"' in line]
    assert len(lines) == 1
    assert lines[0]["level"] == "warning" and lines[0]["weakened"][0]["rule"] == "9"


@pytest.mark.parametrize("command", ["serve", "map", "sync"])
def test_the_clis_refuse_an_unacknowledged_weakening_in_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, json.dumps(WEAKER_UNACKED))
    args = [command] if command == "serve" else [command, str(_record_file(tmp_path))]
    if command == "sync":
        args += ["--dry-run", "--rejects", str(tmp_path / "r.ndjson")]
    result = _runner().invoke(cli, args)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("configuration error in: safety_thresholds:")
    assert "phq9 9: less sensitive" in line and "acknowledge_less_sensitive" in line
    assert result.stdout == ""
