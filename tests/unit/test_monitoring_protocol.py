"""The monitoring protocol file: the shipped defaults, a clinic's copy, and what stops the service and the batch.

A bad file is refused at start with exit code 2 naming the field; a rule made less sensitive than the
default needs an acknowledgement in the file, is logged at start and named by the readings it judges; a
default rule cannot be removed; more sensitive is free.
"""

from __future__ import annotations

import datetime as dt
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from schemas import parse_record
from service.app import create_app
from service.cli import app as cli
from service.mappers import MappingConfig, mapper_for
from service.mappers.context import SessionContext
from service.monitoring import ProtocolError, default_protocol, load_protocol
from service.monitoring.rules import limits
from service.settings import Settings

DEFAULT = resources.files("service.monitoring").joinpath("default-protocol.toml").read_text(encoding="utf-8")
ACK = 'less_sensitive_than_default = { approved_by = "Dr Mensah, medical director", approved_on = 2026-05-01, reason = "r" }'
HR_H = 'when = "heart_rate > 110"\nsource = "Bounds of an ICU ketamine trial (HR > 120, < 50)"'
ENV = "INFUSION_FHIR_MONITORING_PROTOCOL_FILE"
START = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
CTX = SessionContext(
    key="S-P", encounter="Encounter/e", status="completed", started_at=START, ended_at=START.replace(hour=15)
)


def _file(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = DEFAULT
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "protocol.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _weakened_hr(tmp_path: Path) -> Path:
    return _file(tmp_path, (HR_H, HR_H.replace("> 110", "> 120") + "\n" + ACK))


def _heart_rate(value: float, config: MappingConfig) -> dict[str, Any]:
    record = parse_record(
        {"kind": "vital_sign", "key": "V-P", "patient": {"mrn": "M"}, "session_key": "S-P",
         "measured_at": "2026-03-02T14:30:00Z", "type": "heart_rate", "value": value}
    )  # fmt: skip
    return mapper_for("vital_sign").to_fhir_json(record, config, CTX)[0]


def test_the_shipped_defaults_name_a_version_and_cite_a_source_for_every_rule() -> None:
    protocol = default_protocol()
    assert (protocol.name, protocol.version, protocol.file, protocol.weakened) == (
        "Ketamine infusion monitoring", "1", None, ()
    )  # fmt: skip
    every = [*protocol.rules.values(), *protocol.rise.values(), *protocol.confirmed.values()]
    assert len(protocol.rules) == 45 and len(protocol.rise) == 4 and len(protocol.confirmed) == 7
    assert all(rule.source.strip() for rule in every) and protocol.discharge.source
    assert protocol.discharge.minutes_after_end == 60 and protocol.discharge.spo2_without_supplemental_o2
    assert load_protocol(None) is protocol and Settings().mapping_config().protocol == protocol


def test_a_copy_of_the_defaults_loads_and_equals_nothing_but_itself(tmp_path: Path) -> None:
    copy = load_protocol(_file(tmp_path))
    assert copy.weakened == () and copy.file == str(tmp_path / "protocol.toml")
    assert copy == default_protocol()  # same bytes: same name, version and digest
    other = load_protocol(_file(tmp_path, ('version = "1"', 'version = "2"')))
    assert other != default_protocol() and other.version == "2"


BAD: list[tuple[str, tuple[tuple[str, str], ...], str, str]] = [
    ("not TOML", (("format = 1", "format = = 1"),), "(file)", "not valid TOML"),
    ("format", (("format = 1", "format = 2"),), "format", "must be 1"),
    ("unknown top-level key", (("format = 1", "format = 1\nnmae = 'x'"),), "nmae", "unknown key"),
    ("no version", (('version = "1"', ""),), "version", "non-empty string"),
    ("a rule removed (kept for one phase)", (("[readings.heart_rate.any.LL]", "[readings.heart_rate.during.LL]"),), "readings.heart_rate.before.LL", "cannot be removed"),
    ("less sensitive, unacknowledged", ((HR_H, HR_H.replace("> 110", "> 120")),), "readings.heart_rate.any.H.when", "less sensitive than the default (heart_rate > 110)"),
    ("an operator less sensitive", (('when = "systolic >= 180 or diastolic >= 110"\naction = "recheck now"', 'when = "systolic > 180 or diastolic >= 110"\naction = "recheck now"'),), "readings.blood_pressure.during.HH.when", "less sensitive"),
    ("one of x/y dropped", (('when = "systolic < 90"', 'when = "systolic < 89"'),), "readings.blood_pressure.any.L.when", "less sensitive"),
    ("unknown measure", ((HR_H, HR_H.replace("heart_rate > 110", "pulse > 110")),), "readings.heart_rate.any.H.when", "unknown measure 'pulse'"),
    ("unreadable comparison", ((HR_H, HR_H.replace("heart_rate > 110", "heart_rate above 110")),), "readings.heart_rate.any.H.when", "cannot read"),
    ("mixed or/and", (('when = "systolic > 140 or diastolic > 90"', 'when = "systolic > 140 or diastolic > 90 and systolic > 1"'),), "readings.blood_pressure.before.H.when", "mixes"),
    ("H with <", ((HR_H, HR_H.replace("heart_rate > 110", "heart_rate < 110")),), "readings.heart_rate.any.H.when", "H takes > or >="),
    ("a direction the measure has not", (('when = "spo2 < 94"', 'when = "spo2 > 99"'),), "readings.spo2.any.L.when", "no high limit"),
    ("pre_infusion on a vital", ((HR_H, HR_H.replace("heart_rate > 110", "heart_rate > pre_infusion")),), "readings.heart_rate.any.H.when", "moaas and cadss only"),
    ("unknown key (a typo)", ((HR_H, HR_H.replace("when =", "wen =")),), "readings.heart_rate.any.H.wen", "unknown key"),
    ("no source", ((HR_H, 'when = "heart_rate > 110"'),), "readings.heart_rate.any.H.source", "non-empty string"),
    ("unknown level", (("[readings.heart_rate.any.LL]", "[readings.heart_rate.any.XL]"),), "readings.heart_rate.any.XL", "unknown level"),
    ("unknown phase", (("[readings.heart_rate.any.LL]", "[readings.heart_rate.sometimes.LL]"),), "readings.heart_rate.sometimes", "unknown phase"),
    ("a phase set twice", (("[readings.blood_pressure.any.LL]", '[readings.blood_pressure.after.L]\nwhen = "systolic < 95"\nsource = "s"\n[readings.blood_pressure.any.LL]'),), "readings.blood_pressure.any.L", "already set by readings.blood_pressure.after.L"),
    ("critical inside plain", (('when = "respiratory_rate > 30"', 'when = "respiratory_rate > 20"'),), "readings.respiratory_rate.any.HH.when", "critical limit must lie at or beyond"),
    ("high and low overlap", (('when = "heart_rate < 50"', 'when = "heart_rate < 115"'),), "readings.heart_rate.any.L.when", "no value may be both high and low"),
    ("stale acknowledgement", ((HR_H, HR_H + "\n" + ACK),), "readings.heart_rate.any.H.less_sensitive_than_default", "nothing in this table is less sensitive"),
    ("acknowledgement without a date", ((HR_H, HR_H.replace("> 110", "> 120") + "\n" + ACK.replace("2026-05-01", '"May"')),), "readings.heart_rate.any.H.less_sensitive_than_default.approved_on", "must be a date"),
    ("confirmed rule removed", (("[confirmed.desaturation]", "[confirmed.desaturated]"),), "confirmed.desaturation", "cannot be removed"),
    ("confirmed rule weaker", (('when = "heart_rate > 120"\nreadings = 2', 'when = "heart_rate > 120"\nreadings = 2\nphases = ["during"]'),), "confirmed.heart_rate_repeated", "less sensitive"),
    ("discharge weaker", (("minutes_after_end = 60", "minutes_after_end = 30"),), "discharge", "minutes_after_end = 60"),
    ("discharge criterion missing", (("spo2_at_least = 94\n", ""),), "discharge.spo2_at_least", "must be a number"),
    ("rise weaker", (('when = "systolic_rise >= 30 or diastolic_rise >= 20"', 'when = "systolic_rise >= 35 or diastolic_rise >= 20"'),), "rise.during.H.when", "less sensitive"),
]  # fmt: skip


@pytest.mark.parametrize(("edits", "field", "says"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_file_is_refused_naming_the_field(tmp_path: Path, edits: Any, field: str, says: str) -> None:
    path = _file(tmp_path, *edits)
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    assert caught.value.field == field, str(caught.value)
    assert says in caught.value.message, str(caught.value)
    assert caught.value.file == str(path) and str(caught.value).startswith(f"{path}: {field}: ")


def test_a_missing_file_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        load_protocol(tmp_path / "nowhere.toml")
    assert caught.value.field == "(file)" and "cannot be read" in caught.value.message


def test_more_sensitive_is_free_and_reaches_the_mappers_through_mapping_config(tmp_path: Path) -> None:
    stricter = load_protocol(_file(tmp_path, (HR_H, HR_H.replace("> 110", "> 100"))))
    assert stricter.weakened == ()
    assert _heart_rate(105, MappingConfig(protocol=stricter))["interpretation"][0]["coding"][0]["code"] == "H"
    assert _heart_rate(105, MappingConfig())["interpretation"][0]["coding"][0]["code"] == "N"
    settings = Settings(monitoring_protocol_file=str(tmp_path / "protocol.toml"))
    assert settings.mapping_config().protocol is settings.mapping_config().protocol == stricter  # read once


def test_a_weakened_rule_needs_its_acknowledgement_and_is_recorded_and_named_by_each_reading(tmp_path: Path) -> None:
    protocol = load_protocol(_weakened_hr(tmp_path))
    (weak,) = protocol.weakened
    assert (weak.field, weak.default, weak.configured) == (
        "readings.heart_rate.any.H", "heart_rate > 110", "heart_rate > 120"
    )  # fmt: skip
    assert (weak.approved_by, weak.approved_on) == ("Dr Mensah, medical director", dt.date(2026, 5, 1))
    assert all(protocol.rules[("heart_rate", p, "H")].weakened == weak for p in ("before", "during", "after"))
    resource = _heart_rate(115, MappingConfig(protocol=protocol))
    assert resource["interpretation"][0]["coding"][0]["code"] == "N"  # the clinic's limit, not the default's
    normal = resource["referenceRange"][0]
    assert normal["high"]["value"] == 120
    assert (
        "less sensitive than the protocol's default, approved by Dr Mensah, medical director on 2026-05-01"
        in (normal["text"])
    )


def test_the_unknown_phase_takes_each_limit_from_the_strictest_phase(tmp_path: Path) -> None:
    """A clinic whose limits differ by phase: unknown takes the most sensitive one per direction."""
    before_hh = '[readings.blood_pressure.before.HH]\nwhen = "systolic >= 180 or diastolic >= 110"'
    per_phase = "\n".join(
        f'[readings.heart_rate.{phase}.H]\nwhen = "heart_rate > {limit}"\nsource = "s"\n'
        for phase, limit in (("before", 110), ("during", 100), ("after", 110))
    )
    path = _file(
        tmp_path,
        ("[readings.heart_rate.any.H]\n" + HR_H, per_phase),
        (before_hh, before_hh.replace("systolic >= 180", "systolic >= 170")),
    )
    protocol = load_protocol(path)
    unknown = limits(protocol, "heart_rate", None)
    assert unknown is not None and unknown.high is not None and unknown.high.comparison.text() == "heart_rate > 100"
    systolic = limits(protocol, "systolic", None)
    assert systolic is not None and systolic.critical_high is not None
    assert systolic.critical_high.comparison.text() == "systolic >= 170"
    during = limits(protocol, "systolic", "during")
    assert during is not None and during.critical_high is not None
    assert during.critical_high.comparison.text() == "systolic >= 180"


# --- at start: the API and the batch commands ------------------------------------------------------------


def test_the_api_does_not_start_on_a_bad_file_exit_2_naming_the_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _file(tmp_path, (HR_H, HR_H.replace("> 110", "> 120")))
    with caplog.at_level(logging.ERROR, logger="infusion_fhir"), pytest.raises(SystemExit) as caught:
        create_app(Settings(monitoring_protocol_file=str(path)))
    assert caught.value.code == 2
    (line,) = [r for r in caplog.records if r.getMessage() == "app.protocol_invalid"]
    assert line.field == "readings.heart_rate.any.H.when"  # type: ignore[attr-defined]


def test_the_api_logs_a_weakened_rule_at_start_and_its_engine_uses_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(monitoring_protocol_file=str(_weakened_hr(tmp_path)))
    with caplog.at_level(logging.INFO, logger="infusion_fhir"), TestClient(create_app(settings)) as client:
        assert client.app.state.engine.config.protocol.weakened  # type: ignore[attr-defined]
    (started,) = [r for r in caplog.records if r.getMessage() == "monitoring.protocol"]
    assert started.weakened == 1 and started.protocol_version == "1"  # type: ignore[attr-defined]
    (weak,) = [r for r in caplog.records if r.getMessage() == "monitoring.protocol_weakened"]
    assert weak.levelno == logging.WARNING
    assert (weak.field, weak.default, weak.configured, weak.approved_on) == (  # type: ignore[attr-defined]
        "readings.heart_rate.any.H", "heart_rate > 110", "heart_rate > 120", "2026-05-01"
    )  # fmt: skip


def _records(tmp_path: Path) -> Path:
    path = tmp_path / "records.ndjson"
    path.write_text(
        '{"kind":"vital_sign","key":"V-C","patient":{"mrn":"M-C"},"measured_at":"2026-03-02T14:30:00Z",'
        '"type":"heart_rate","value":115}\n'
    )
    return path


@pytest.mark.parametrize("command", [["sync", "--dry-run"], ["validate"], ["map"], ["serve"]])
def test_the_commands_stop_at_start_with_exit_2_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv(ENV, str(_file(tmp_path, (HR_H, HR_H.replace("> 110", "> 120")))))

    def serving(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("serve got past the protocol check")  # fail, rather than serve forever

    monkeypatch.setattr("uvicorn.run", serving)
    args = command if command == ["serve"] else [*command, str(_records(tmp_path))]
    if command[0] == "sync":
        args += ["--rejects", str(tmp_path / "rejects.ndjson")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "monitoring_protocol_file" in result.stderr and "readings.heart_rate.any.H.when" in result.stderr


def test_map_logs_the_weakened_rule_at_start_and_maps_with_the_clinics_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(_weakened_hr(tmp_path)))
    result = CliRunner().invoke(cli, ["map", str(_records(tmp_path))])
    assert result.exit_code == 0, result.stderr
    assert '"event":"monitoring.protocol_weakened"' in result.stderr
    assert '"field":"readings.heart_rate.any.H"' in result.stderr
    assert '"code":"N"' in result.stdout and "approved by Dr Mensah" in result.stdout  # 115 is not over 120
