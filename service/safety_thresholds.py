"""The safety thresholds in force, announced once at start (API lifespan, batch and map CLIs): no PHI.

A clinic may make a safety rule less sensitive only with an explicit acknowledgement (settings
`safety_thresholds`, service/instruments/thresholds.py); such a rule must leave a trace. One log line
at start names every weakened rule (instrument, rule, default, configured value and a neutral
description), as a warning; without any, an info line says how many overrides are in force.
"""

from __future__ import annotations

import logging

from service.mappers.config import MappingConfig

log = logging.getLogger("infusion_fhir.safety")
EVENT = "safety.thresholds"


def announce_thresholds(config: MappingConfig) -> None:
    """Log the thresholds in force once: a warning naming each weakened rule, else an info line."""
    thresholds = config.thresholds
    weakened = [
        {
            "instrument": rule.instrument,
            "rule": rule.rule,
            "default": rule.default,
            "configured": rule.configured,
            "description": rule.description,
        }
        for rule in thresholds.weakened
    ]
    level = logging.WARNING if weakened else logging.INFO
    log.log(level, EVENT, extra={"overrides": len(config.safety_overrides), "weakened": weakened})
