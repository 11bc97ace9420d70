"""Many processes at once (issue 11, part 7): `serve --workers 4`, two batch syncs and API PUTs, all
writing the same patients at the same time, against the real HAPI, still write everything exactly once."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from schemas import kinds, parse_record
from service.auth import key_digest
from service.mappers import MappingConfig
from service.mappers.bundle import TYPE_ORDER, bundle_resources
from service.mappers.ids import mrn_of, patient_urn
from service.safety.flags import details
from tests.integration.batch_support import CLI, Namespace
from tests.integration.conftest import API_KEY, AUTH
from tests.integration.served import served

PATIENTS = 3
WORKERS = 4
IN_FLIGHT = 8  # API requests the test keeps open at once
SEGMENTS = {kind: segment for segment, kind in kinds.SEGMENTS.items()}
RESOURCE_TYPES = TYPE_ORDER  # every type a record can become, as the Bundle orders them


@pytest.fixture
def ns(fhir_base_url: str, run_id: str) -> Iterator[Namespace]:
    namespace = Namespace(fhir_base_url, run_id)
    yield namespace
    namespace.purge()


@pytest.fixture
def server(ns: Namespace, tmp_path: Path) -> Iterator[str]:
    """`infusion-fhir serve --workers 4` on a free port, in this test's namespace; its base URL."""

    def serve(port: int) -> list[str]:
        return [CLI, "serve", "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port)]

    with served(serve, ns.env(INFUSION_FHIR_API_KEYS=key_digest(API_KEY)), tmp_path / "serve.log") as base_url:
        yield base_url


def session_blocks(lines: list[bytes]) -> list[list[bytes]]:
    """The file's lines as blocks: a session line and the lines after it, up to the next session."""
    blocks: list[list[bytes]] = []
    for line in lines:
        if orjson.loads(line)["kind"] == "infusion_session" or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    return blocks


def api_records(blocks: list[list[bytes]]) -> list[list[dict[str, Any]]]:
    """Chains of records the test PUTs, each chain in order (a session before its children).

    Every other session of the file, with its first children: the same records the syncs send.
    Per patient, records no file has: a new session, and a vital sign and PHQ-9 with no session.
    """
    chains: list[list[dict[str, Any]]] = []
    for block in blocks[::2]:
        chains.append([orjson.loads(line) for line in block[:4]])
    firsts: dict[str, dict[str, dict[str, Any]]] = {}
    for block in blocks:
        for line in block:
            record = orjson.loads(line)
            firsts.setdefault(record["patient"]["mrn"], {}).setdefault(record["kind"], record)
    for n, (_mrn, by_kind) in enumerate(sorted(firsts.items())):
        session = {**by_kind["infusion_session"], "key": f"api{n}.s1"}
        session["started_at"], session["ended_at"] = "2026-01-05T09:00:00-05:00", "2026-01-05T09:40:00-05:00"
        chains.append([session])
        for kind in ("vital_sign", "phq9_assessment"):
            standalone = {k: v for k, v in by_kind[kind].items() if k != "session_key"}
            chains.append([{**standalone, "key": f"api{n}.{kind}"}])
    return chains


async def put_all(
    base_url: str, chains: list[list[dict[str, Any]]], syncs: list[subprocess.Popen[str]]
) -> tuple[list[httpx.Response], int]:
    """PUT every chain concurrently (at most IN_FLIGHT requests open), each chain in order.

    Also returns how many responses came while a sync was still running (the overlap is real).
    """
    gate = asyncio.Semaphore(IN_FLIGHT)
    responses: list[httpx.Response] = []
    during_syncs = 0
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=120) as client:

        async def put_chain(chain: list[dict[str, Any]]) -> None:
            for record in chain:
                body = {k: v for k, v in record.items() if k != "kind"}
                async with gate:
                    response = await client.put(f"/v1/{SEGMENTS[record['kind']]}/{record['key']}", json=body)
                responses.append(response)
                nonlocal during_syncs
                during_syncs += any(process.poll() is None for process in syncs)

        await asyncio.gather(*(put_chain(chain) for chain in chains))
    return responses, during_syncs


def identifiers(resource: dict[str, Any]) -> list[tuple[str, str]]:
    found = resource.get("identifier") or []
    return [(i.get("system"), i.get("value")) for i in (found if isinstance(found, list) else [found])]


def test_workers_syncs_and_api_writes_at_once_write_everything_exactly_once(ns, server, tmp_path) -> None:
    full = tmp_path / "full.ndjson"
    made = ns.cli("demo-data", "--patients", str(PATIENTS), "--seed", "7", "-o", str(full))
    assert made.returncode == 0, made.stderr
    blocks = session_blocks(full.read_bytes().splitlines())
    # The second file: the same patients, sessions in reverse order, every third session left out.
    partial = tmp_path / "partial.ndjson"
    partial.write_bytes(b"\n".join(line for i, b in enumerate(reversed(blocks)) if i % 3 != 2 for line in b) + b"\n")
    chains = api_records(blocks)

    syncs = [
        ns.popen(
            "sync",
            str(path),
            "--batch-size",
            "20",
            "--concurrency",
            "4",
            "--rejects",
            str(tmp_path / f"rejects{i}.ndjson"),
            "--report",
            str(tmp_path / f"report{i}.json"),
        )
        for i, path in enumerate((full, partial))
    ]
    try:
        responses, during_syncs = asyncio.run(put_all(server, chains, syncs))
        outputs = [process.communicate(timeout=120) for process in syncs]
    finally:
        for process in syncs:
            if process.poll() is None:
                process.kill()
                process.wait()

    # No 5xx, and (the records being valid and each child's session PUT before it) no refusal.
    assert len(responses) == sum(map(len, chains))
    assert during_syncs > len(responses) // 2, "the API writes did not overlap the syncs"
    server_errors = [(r.request.url.path, r.status_code, r.text[:300]) for r in responses if r.status_code >= 500]
    assert not server_errors
    refused = [(r.request.url.path, r.status_code, r.text[:300]) for r in responses if r.status_code not in (200, 201)]
    assert not refused
    for i, process in enumerate(syncs):
        assert process.returncode == 0, outputs[i][1][-3000:]
        report = json.loads((tmp_path / f"report{i}.json").read_text())
        assert report["rejected"] == 0 and report["synced"] == report["lines"]

    # What every record written maps to: the full file plus the records only the API sent.
    by_key = {r["key"]: r for r in map(orjson.loads, full.read_bytes().splitlines())}
    for chain in chains:
        for record in chain:
            by_key.setdefault(record["key"], record)
    config = MappingConfig(identifier_system_base=ns.identifier_base, mrn_system=ns.mrn_system)
    patients, _, resources = bundle_resources([parse_record(r) for r in by_key.values()], config)

    # Exactly one Patient per MRN.
    found = ns._post("Patient/_search", {"identifier": f"{ns.mrn_system}|", "_count": "500"})
    mrns = Counter(v for e in found.get("entry", []) for s, v in identifiers(e["resource"]) if s == ns.mrn_system)
    assert mrns == Counter(set(patients)), mrns

    # Every resource exactly once: the ids the records map to, each business identifier once. The records' own
    # suicide-risk Flags become the patient's (service/safety), checked on their own below.
    own_flags = [r for (t, _), r in resources.items() if t == "Flag"]
    resources = {(t, i): r for (t, i), r in resources.items() if t != "Flag"}
    held = {f"{t}/{r['id']}": r for t in RESOURCE_TYPES if t != "Flag" for r in ns.mapped_of(t)}
    assert sorted(held) == sorted(f"{t}/{i}" for t, i in resources)
    held_identifiers = Counter((ref.split("/")[0], *ident) for ref, r in held.items() for ident in identifiers(r))
    assert [k for k, n in held_identifiers.items() if n > 1] == []
    expected_identifiers = Counter((t, *ident) for (t, _), r in resources.items() for ident in identifiers(r))
    assert held_identifiers == expected_identifiers
    flags_name_every_positive(ns, config, own_flags)
    # ... and none elsewhere on the server (e.g. under a Patient outside this namespace); R4 gives
    # AdverseEvent no `identifier` search parameter.
    for resource_type, system in {(t, s) for t, s, _ in expected_identifiers if t != "AdverseEvent"}:
        total = ns._post(f"{resource_type}/_search", {"identifier": f"{system}|", "_summary": "count"})["total"]
        assert total == sum(1 for t, s, _ in held_identifiers if (t, s) == (resource_type, system)), (
            resource_type,
            system,
        )


def flags_name_every_positive(ns: Namespace, config: MappingConfig, own_flags: list[dict[str, Any]]) -> None:
    """Each patient's Flags are ours (each opened with the id of one of its positive records' own Flags), active,
    and between them name every positive of the patient. Usually one Flag per patient; writers in
    two processes opening the patient's first Flag at the same instant may open two (H-36, a residual risk)."""
    urn_of = {f"Patient/{p['id']}": patient_urn(mrn_of(p, config), config) for p in ns.patients()}
    wanted: dict[str, dict[str, dict[str, Any]]] = {}
    for flag in own_flags:
        wanted.setdefault(flag["subject"]["reference"], {})[flag["id"]] = flag
    held: dict[str, list[dict[str, Any]]] = {}
    for flag in ns.mapped_of("Flag"):
        held.setdefault(urn_of[flag["subject"]["reference"]], []).append(flag)
    assert sorted(held) == sorted(wanted)
    for patient, flags in held.items():
        assert {f["id"] for f in flags} <= set(wanted[patient]) and {f["status"] for f in flags} == {"active"}
        named = {d for f in flags for d in details(f)}
        assert named == {d for f in wanted[patient].values() for d in details(f)}
