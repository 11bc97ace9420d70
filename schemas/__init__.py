"""The clinical record contract: pydantic v2 models of the record kinds and their parsing API."""

from schemas.adverse_event import AdverseEvent, EmbeddedAdverseEvent
from schemas.assessment import Assessment, EmbeddedAssessment
from schemas.common import Clinician, PatientInfo
from schemas.export import record_json_schema
from schemas.monitoring_score import EmbeddedMonitoringScore, MonitoringScore
from schemas.phq9 import EmbeddedPhq9Assessment, Phq9Assessment
from schemas.records import (
    KINDS,
    MODELS,
    Issue,
    Record,
    RecordInvalid,
    format_path,
    parse_record,
    parse_record_of_kind,
    safety_issues,
)
from schemas.session import Dose, InfusionSession, Rate
from schemas.vital_sign import EmbeddedVitalSign, VitalSign

__all__ = [
    "KINDS",
    "MODELS",
    "AdverseEvent",
    "Assessment",
    "Clinician",
    "Dose",
    "EmbeddedAdverseEvent",
    "EmbeddedAssessment",
    "EmbeddedMonitoringScore",
    "EmbeddedPhq9Assessment",
    "EmbeddedVitalSign",
    "InfusionSession",
    "Issue",
    "MonitoringScore",
    "PatientInfo",
    "Phq9Assessment",
    "Rate",
    "Record",
    "RecordInvalid",
    "VitalSign",
    "format_path",
    "parse_record",
    "parse_record_of_kind",
    "record_json_schema",
    "safety_issues",
]
