"""An in-memory FHIR server behind `httpx.MockTransport`, for engine and batch tests without a server.

It knows just enough FHIR for what the sync engine sends: transaction Bundles (PUT, DELETE and
conditional-create POST with `ifNoneExist`, `urn:uuid:` references rewritten), reads (404 absent,
410 deleted), and POST `_search` with a form body over `_id`, `identifier` (FHIR token escaping),
`part-of`, `encounter`, `substance`, `subject`/`patient`, `patient.identifier`, `code`, `target` and
`_include=<Type>:subject` or `:patient`, `_revinclude=*` (every resource naming a match); a token `system|` matches any value; an `ifMatch` on a stale
version fails the whole transaction with 412.

Tests steer it with `intercept(request, body) -> httpx.Response | None` (answer before the fake
does, e.g. a 409 or a 400) and read back every request in `requests`, every transaction Bundle
in `transactions`, and an ordered `events` log: ("txn-start"/"txn-end", n, bundle) and
("search", resource type, form).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import orjson

from service.fhir_client import open_fhir_client
from service.mappers import MappingConfig
from service.settings import Settings
from service.sync import SyncEngine

BASE = "http://fhir.test/fhir"
CAPABILITY = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [{"mode": "server", "interaction": [{"code": "transaction"}]}],
}
Intercept = Callable[[httpx.Request, Any], "httpx.Response | None | Awaitable[httpx.Response | None]"]


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split a FHIR search value on `sep` where it is not escaped with a backslash."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current + ("\\" if escaped else ""))
    return parts


def unescape(text: str) -> str:
    out, escaped = "", False
    for char in text:
        if escaped:
            out += char
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out += char
    return out


def tokens(value: str) -> list[tuple[str | None, str]]:
    """(system, value) pairs of a token search parameter (comma-separated, FHIR-escaped)."""
    out = []
    for token in split_unescaped(value, ","):
        pieces = split_unescaped(token, "|")
        if len(pieces) == 1:
            out.append((None, unescape(pieces[0])))
        else:
            out.append((unescape(pieces[0]), unescape("|".join(pieces[1:]))))
    return out


def loose_tokens(value: str) -> list[tuple[str | None, str]]:
    """`tokens` as a server that does not honour search escaping parses them (Medplum's engine, docs/compatibility.md
    row 17): split at every `,`, a system at the first `|`, each piece of the rest at `|` a value of its own,
    backslashes dropped. So `s|B\\|` finds the identifier `s|B`."""
    out: list[tuple[str | None, str]] = []
    for token in value.split(","):
        system, bar, rest = token.partition("|")
        pieces = rest.split("|") if bar else [system]
        for piece in pieces:
            out.append((system.replace("\\", "") if bar else None, piece.replace("\\", "")))
    return out


def _replace_refs(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: refs.get(v, v) if k == "reference" and isinstance(v, str) else _replace_refs(v, refs)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_replace_refs(v, refs) for v in value]
    return value


def _identifiers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    idents = resource.get("identifier") or []
    return idents if isinstance(idents, list) else [idents]


def _ref(resource: dict[str, Any], path: str) -> str | None:
    return (resource.get(path) or {}).get("reference")


class FakeFhir:
    """A FHIR server's store and REST behaviour, in memory."""

    def __init__(self, base: str = BASE) -> None:
        self.base = base
        self.store: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.requests: list[httpx.Request] = []
        self.transactions: list[dict[str, Any]] = []
        self.events: list[tuple[Any, ...]] = []
        self.intercept: Intercept | None = None
        self.transaction_turns = 0
        """Event-loop turns each transaction stays open (lets concurrent requests interleave)."""
        self.opaque_versions = False
        """On: every write's versionId a new UUID hex and its `lastUpdated` the time, as Medplum's (compatibility row 4)."""
        self.honours_escapes = True
        """Off: token searches and `ifNoneExist` parsed as `loose_tokens` (a server ignoring FHIR search escaping)."""
        self._next = 0

    # -- wiring -------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def put(self, resource: dict[str, Any]) -> None:
        """Place a resource on the server directly (state another writer left)."""
        self.store[f"{resource['resourceType']}/{resource['id']}"] = copy.deepcopy(resource)

    def matches(self, resource_type: str, form: dict[str, str]) -> list[dict[str, Any]]:
        """What a search with `form` finds (its matches, without `_include`d resources)."""
        return [e["resource"] for e in self._search(resource_type, form)["entry"] if e["search"]["mode"] == "match"]

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for ref, r in self.store.items() if ref.startswith(resource_type + "/")]

    # -- REST ---------------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix(httpx.URL(self.base).path).strip("/")
        body: Any = None
        if request.method in ("POST", "PUT") and request.content:
            if path.endswith("/_search"):
                body = {k: v[-1] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}
            else:
                body = orjson.loads(request.content)
        if self.intercept is not None:
            answer = self.intercept(request, body)
            if asyncio.iscoroutine(answer):
                answer = await answer
            if answer is not None:
                return answer
        if request.method == "GET" and path == "metadata":
            return httpx.Response(200, json=CAPABILITY)
        if request.method == "POST" and path == "":
            return await self._transaction(body)
        if request.method == "POST" and path.endswith("/_search"):
            resource_type = path.split("/", 1)[0]
            self.events.append(("search", resource_type, body))
            return httpx.Response(200, json=self._search(resource_type, body))
        if request.method == "POST" and path.endswith("/$validate"):
            return httpx.Response(
                200,
                json={
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "information", "code": "informational", "diagnostics": "ok"}],
                },
            )
        if request.method == "GET" and path.count("/") == 1:
            if path in self.store:
                return httpx.Response(200, json=self.store[path])
            return httpx.Response(
                410 if path in self.deleted else 404, json={"resourceType": "OperationOutcome", "issue": []}
            )
        return httpx.Response(
            400,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "not-supported", "diagnostics": f"fake: {request.method} {path}"}
                ],
            },
        )

    async def _transaction(self, bundle: dict[str, Any]) -> httpx.Response:
        n = len(self.transactions)
        self.transactions.append(bundle)
        self.events.append(("txn-start", n, bundle))
        for _ in range(self.transaction_turns):
            await asyncio.sleep(0)  # yield the loop (no wall-clock wait): other tasks may run meanwhile
        for entry in bundle["entry"]:
            expected = entry["request"].get("ifMatch")
            held = self.store.get(entry["request"]["url"], {}).get("meta", {}).get("versionId")
            if expected is not None and expected != f'W/"{held}"':
                return httpx.Response(412, json=outcome(f"version conflict on {entry['request']['url']}"))
        refs: dict[str, str] = {}
        answers: list[dict[str, Any]] = []
        for entry in bundle["entry"]:
            request = entry["request"]
            if request["method"] != "POST":
                answers.append({})
                continue
            resource_type = request["url"]
            found = self._by_identifier(resource_type, self._tokens(unquote(request["ifNoneExist"].split("=", 1)[1])))
            if found:
                ref = f"{resource_type}/{found[0]['id']}"
                answers.append({"status": "200 OK", "location": f"{ref}/_history/1"})
            else:
                self._next += 1
                ref = f"{resource_type}/{resource_type.lower()}-{self._next}"
                answers.append({"status": "201 Created", "location": f"{ref}/_history/1", "create": True})
            refs[entry["fullUrl"]] = ref
        response_entries = []
        for entry, answer in zip(bundle["entry"], answers, strict=True):
            request = entry["request"]
            if request["method"] == "DELETE":
                self.store.pop(request["url"], None)
                self.deleted.add(request["url"])
                response_entries.append({"response": {"status": "204 No Content"}})
                continue
            resource = _replace_refs(copy.deepcopy(entry["resource"]), refs)
            if request["method"] == "POST":
                ref = refs[entry["fullUrl"]]
                if answer.pop("create", False):
                    resource["id"] = ref.split("/", 1)[1]
                    resource["meta"] = {"versionId": "1"}
                    self.store[ref] = resource
                response_entries.append({"response": answer})
                continue
            ref = request["url"]
            old = self.store.get(ref)
            held = str((old or {}).get("meta", {}).get("versionId", "0"))
            version = uuid.uuid4().hex if self.opaque_versions else str(int(held) + 1)
            resource["meta"] = {**resource.get("meta", {}), "versionId": str(version)}
            if self.opaque_versions:  # and, as Medplum, the time of each write
                resource["meta"]["lastUpdated"] = dt.datetime.now(dt.UTC).isoformat()
            self.store[ref] = resource
            self.deleted.discard(ref)
            status = "201 Created" if old is None else "200 OK"
            response_entries.append(
                {"response": {"status": status, "location": f"{ref}/_history/{version}", "etag": f'W/"{version}"'}}
            )
        self.events.append(("txn-end", n, bundle))
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": response_entries}
        )

    def _tokens(self, value: str) -> list[tuple[str | None, str]]:
        return tokens(value) if self.honours_escapes else loose_tokens(value)

    def _by_identifier(self, resource_type: str, wanted: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
        return [
            r
            for r in self.of_type(resource_type)
            if any(
                (s is None or i.get("system") == s) and v in ("", i.get("value"))
                for i in _identifiers(r)
                for s, v in wanted
            )
        ]

    def _search(self, resource_type: str, form: dict[str, str]) -> dict[str, Any]:
        matches = self.of_type(resource_type)
        for name, value in form.items():
            values = value.split(",")
            if name == "_id":
                matches = [r for r in matches if r["id"] in values]
            elif name == "identifier":
                wanted = self._tokens(value)
                matches = [r for r in matches if r in self._by_identifier(resource_type, wanted)]
            elif name == "part-of":
                matches = [r for r in matches if any(p.get("reference") in values for p in r.get("partOf", []))]
            elif name == "encounter":
                matches = [r for r in matches if _ref(r, "encounter") in values]
            elif name in ("subject", "patient"):
                matches = [r for r in matches if _ref(r, "subject") in values]
            elif name == "patient.identifier":
                patients = {f"Patient/{p['id']}" for p in self._by_identifier("Patient", self._tokens(value))}
                matches = [r for r in matches if _ref(r, "subject") in patients]
            elif name == "substance":
                matches = [
                    r
                    for r in matches
                    if any((s.get("instance") or {}).get("reference") in values for s in r.get("suspectEntity", []))
                ]
            elif name == "code":
                codes = [tuple(v.split("|", 1)) for v in values]
                matches = [
                    r
                    for r in matches
                    if any((c.get("system"), c.get("code")) in codes for c in (r.get("code") or {}).get("coding", []))
                ]
            elif name == "target":
                matches = [r for r in matches if any(t.get("reference") in values for t in r.get("target", []))]
            elif name in ("_include", "_revinclude", "_count", "_elements", "_total"):
                continue
            else:
                raise AssertionError(f"fake FHIR server: unsupported search parameter {name}")
        entries = [{"resource": r, "search": {"mode": "match"}} for r in matches]
        if form.get("_include", "").endswith((":subject", ":patient")):
            seen = set()
            for r in matches:
                ref = _ref(r, "subject")
                if ref in self.store and ref not in seen:
                    seen.add(ref)
                    entries.append({"resource": self.store[ref], "search": {"mode": "include"}})
        if form.get("_revinclude") == "*":  # every resource naming a match
            named = [orjson.dumps({"reference": f"{r['resourceType']}/{r['id']}"})[1:-1] for r in matches]
            entries += [
                {"resource": r, "search": {"mode": "include"}}
                for r in self.store.values()
                if any(n in orjson.dumps(r) for n in named)
            ]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": entries}


def outcome(diagnostics: str, severity: str = "error", code: str = "processing") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


class InstantSleep:
    """RetryPolicy's `sleep` seam: records the delays, never waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class EngineRig:
    """A sync engine on a `FakeFhir`: drive the engine, inspect the fake."""

    fake: FakeFhir
    engine: SyncEngine

    @property
    def config(self) -> MappingConfig:
        return self.engine.config


@asynccontextmanager
async def engine_rig() -> AsyncIterator[EngineRig]:
    """An `EngineRig` with the default settings, its client closed on exit."""
    fake = FakeFhir()
    settings = Settings(FHIR_BASE_URL=BASE)
    async with open_fhir_client(settings, transport=fake.transport()) as fhir:
        yield EngineRig(fake, SyncEngine(fhir, settings.mapping_config()))
