"""The clinic's infusion monitoring protocol: a versioned file of limits, and each reading judged against it.

`load_protocol` reads and checks the file (model.py, condition.py, loader.py, weakening.py); `rules.limits`
gives the limits a reading is judged against in its phase. The mappers receive the protocol through
`MappingConfig.protocol` and stay pure. Intended use: documentation, not an alarm.
"""

from __future__ import annotations

import logging

from service.monitoring.loader import default_protocol, load_protocol
from service.monitoring.model import PHASES, Protocol, ProtocolError, Weakening

__all__ = ["PHASES", "Protocol", "ProtocolError", "Weakening", "announce", "default_protocol", "load_protocol"]


def announce(protocol: Protocol, log: logging.Logger) -> None:
    """Log at start which protocol is in use and every rule it made less sensitive than the default (no PHI:
    protocol text only)."""
    log.info(
        "monitoring.protocol",
        extra={
            "protocol": protocol.name,
            "protocol_version": protocol.version,
            "protocol_file": protocol.file or "(shipped defaults)",
            "protocol_sha256": protocol.digest[:16],
            "approved": protocol.approved_by is not None,
            "weakened": len(protocol.weakened),
        },
    )
    for weak in protocol.weakened:
        log.warning(
            "monitoring.protocol_weakened",
            extra={
                "protocol": protocol.name,
                "protocol_version": protocol.version,
                "field": weak.field,
                "default": weak.default,
                "configured": weak.configured,
                "approved_by": weak.approved_by,
                "approved_on": weak.approved_on.isoformat(),
            },
        )
