"""`infusion-fhir validate`: each distinct mapped resource through the server's `$validate` once, issues grouped."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.batch.source import Line
from service.errors import Conflict, FhirRejected, InfusionFhirError, NotFound
from service.fhir_client import FhirClient
from service.mappers import MappingConfig, mapper_for, patient_resource
from service.mappers.fhir import to_json

ERRORS = ("fatal", "error")
REPORTED = (*ERRORS, "warning")
KEYS_SHOWN = 5
"""Record keys (or line numbers) named per group of errors; the rest are counted."""
MESSAGE_WIDTH = 240
CACHE_SIZE = 100_000
"""Distinct resources whose verdicts are remembered: a resource met again is not sent again (a
patient's Patient comes with every one of its records)."""

Issue = dict[str, Any]
_QUOTED_CODE = re.compile(r"(?<!\w)'[^'\s]*(?:#|://|@)[^'\s]*'")
"""A quoted word (no spaces: not a quoted sentence, nor the apostrophe of "can't") holding a code
(`system#code`), a URL or a Java object id."""


def message_of(issue: Issue) -> str:
    """An issue's diagnostics with quoted codes, URLs and object ids masked, so that one kind of message
    is one group (`--all-issues` shows them unmasked)."""
    return _QUOTED_CODE.sub("'…'", str(issue.get("diagnostics") or "(no diagnostics)"))


@dataclass
class Group:
    """One message, and how often it was found: by resource type, with the records it was found in."""

    count: int = 0
    types: Counter[str] = field(default_factory=Counter)
    where: list[str] = field(default_factory=list)
    """Record keys (or `line N`), the first KEYS_SHOWN; `elsewhere` counts the others."""
    elsewhere: int = 0

    def seen_in(self, where: str) -> None:
        if where in self.where:
            return
        if len(self.where) < KEYS_SHOWN:
            self.where.append(where)
        else:
            self.elsewhere += 1


@dataclass
class Validation:
    """A validate run's account: counts as the command has always printed them, issues grouped by message."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("records", "resources", "records_with_errors", "invalid_lines", "warnings", "validated"), 0
        )
    )
    errors: dict[str, Group] = field(default_factory=dict)
    warnings: dict[str, Group] = field(default_factory=dict)
    invalid: dict[str, Group] = field(default_factory=dict)
    bytes_done: int = 0

    def failed(self) -> bool:
        return bool(self.counts["records_with_errors"] or self.counts["invalid_lines"])

    def add_invalid(self, line: Line) -> None:
        self.counts["invalid_lines"] += 1
        for issue in line.issues[:1]:
            group = self.invalid.setdefault(f"{issue.path or '(record)'}: {issue.message}", Group())
            group.count += 1
            group.seen_in(f"line {line.number}" + (f" ({line.key})" if line.key else ""))

    def add_found(self, key: str, fresh: list[Issue]) -> None:
        """Issues of resources validated for the first time (each counted once), found in record `key`."""
        for issue in fresh:
            groups = self.errors if issue["severity"] in ERRORS else self.warnings
            group = groups.setdefault(message_of(issue), Group())
            group.count += 1
            group.types[issue["resource"].split("/", 1)[0]] += 1
            group.seen_in(key)
            self.counts["warnings"] += issue["severity"] not in ERRORS


def content_key(resource: dict[str, Any]) -> str:
    """Type, id and a hash of the content: the same resource met again has the same key."""
    digest = hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{resource['resourceType']}/{resource.get('id', '')}/{digest}"


class Validator:
    """Sends each distinct resource to `$validate` once (concurrent askers share the one request)."""

    def __init__(self, fhir: FhirClient, concurrency: int) -> None:
        self.fhir = fhir
        self.semaphore = asyncio.Semaphore(concurrency)
        self.verdicts: OrderedDict[str, asyncio.Task[list[Issue]]] = OrderedDict()
        self.stopped: InfusionFhirError | None = None
        """What stopped the run (an unusable server), once one verdict met it."""

    def issues(self, resource: dict[str, Any]) -> tuple[asyncio.Task[list[Issue]], bool]:
        """The resource's issues (a task), and whether this is the first time it was asked for."""
        key = content_key(resource)
        if (task := self.verdicts.get(key)) is not None:
            self.verdicts.move_to_end(key)
            return task, False
        task = asyncio.ensure_future(self._check(resource))
        self.verdicts[key] = task
        if len(self.verdicts) > CACHE_SIZE:
            self.verdicts.popitem(last=False)
        return task, True

    async def close(self) -> None:
        """Cancel the verdicts still asked for and wait until they end, so that none outlives the FHIR client
        (a stop raised by one left the others running: their connections were torn down by the closing loop,
        "coroutine ... was never awaited")."""
        pending = [task for task in self.verdicts.values() if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _check(self, resource: dict[str, Any]) -> list[Issue]:
        ref = f"{resource['resourceType']}/{resource.get('id', '(patient)')}"
        try:
            async with self.semaphore:
                if self.stopped is not None:  # the server cannot be used: ask it nothing more
                    raise self.stopped
                outcome = await self.fhir.validate(resource)
        except (FhirRejected, Conflict, NotFound) as exc:  # about this resource; anything else stops
            return [{"resource": ref, "severity": "error", "diagnostics": exc.message, "expression": None}]
        except InfusionFhirError as exc:
            self.stopped = exc
            raise
        return [
            {
                "resource": ref,
                "severity": i.get("severity"),
                "diagnostics": i.get("diagnostics"),
                "expression": i.get("expression"),
            }
            for i in outcome.get("issue", [])
            if i.get("severity") in REPORTED
        ]


async def validate_lines(
    lines: Iterable[Line],
    fhir: FhirClient,
    config: MappingConfig,
    concurrency: int,
    *,
    each: Callable[[dict[str, Any]], None] | None = None,
    into: Validation | None = None,
) -> Validation:
    """Validate every record's resources (its Patient included); `each` gets the per-record line of
    `--all-issues` (every issue of the record, repeated resources included); `into` is filled as it
    goes (a progress bar reads it)."""
    validation = Validation() if into is None else into
    validator = Validator(fhir, concurrency)
    try:
        for line in lines:
            validation.bytes_done += line.size
            if line.record is None:
                if line.issues:
                    validation.add_invalid(line)
                    if each:
                        each(
                            {
                                "line": line.number,
                                "key": line.key,
                                "invalid": [{"path": i.path, "message": i.message} for i in line.issues],
                            }
                        )
                continue
            record = line.record
            resources = [to_json(patient_resource(record.patient, config))]
            resources += [to_json(r) for r in mapper_for(record.kind).to_fhir(record, config)]
            asked = [validator.issues(r) for r in resources]
            verdicts = await asyncio.gather(*(task for task, _ in asked))
            found = [i for issues in verdicts for i in issues]
            validation.counts["records"] += 1
            validation.counts["resources"] += len(resources)
            validation.counts["validated"] += sum(first for _, first in asked)
            validation.add_found(
                record.key, [i for (_, first), issues in zip(asked, verdicts, strict=True) if first for i in issues]
            )
            if any(i["severity"] in ERRORS for i in found):
                validation.counts["records_with_errors"] += 1
                for issue in found:  # a shared resource's errors name every record that carries it
                    if issue["severity"] in ERRORS:
                        validation.errors.setdefault(message_of(issue), Group()).seen_in(record.key)
            if each and found:
                each({"line": line.number, "kind": record.kind, "key": record.key, "issues": found})
    finally:
        await validator.close()
    return validation


def emit(obj: dict[str, Any]) -> None:
    """One `--all-issues` line on stdout."""
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
