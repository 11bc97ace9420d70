"""The service's own Questionnaire per instrument: its canonical URL and version (the resource itself follows)."""

from __future__ import annotations

from service.instruments import definition
from service.mappers.config import MappingConfig


def questionnaire_url(config: MappingConfig, instrument: str) -> str:
    """The canonical URL of the service's Questionnaire for `instrument`, never LOINC's namespace."""
    return f"{config.canonical_base}/Questionnaire/{definition(instrument).id}"


def questionnaire_canonical(config: MappingConfig, instrument: str) -> str:
    """`url|version`, as a QuestionnaireResponse's `questionnaire` names the version its answers follow."""
    return f"{questionnaire_url(config, instrument)}|{definition(instrument).version}"
