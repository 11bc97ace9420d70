"""The floor of mapping: the same FHIR JSON as plain dict literals, no checks, no caches to look up.

This is what the output costs to build at the least: every constant fragment made once up front,
every record turned into dicts with no validation and no function layers. The mapping benchmark
asserts that it emits byte for byte what ours emits, so both produce the same resources.

A child's session context (see service.mappers.context) is a plain tuple here:
(link extension list, encounter reference, observation status, infusion start or None when nothing
can be "during" it, infusion end, partOf list, suspect reference, Flag status, phase rule: "timed"
when start and end place a reading, "before" for a not-done session, None when the phase is unknown).
A child sent on its own gets the default context of its session key (built once per key); embedded
children get their session's.

Interpretation (the monitoring protocol, service/monitoring): the limits of each measure in each phase,
their reference ranges and interpretation codings are made once up front from the protocol; a reading
is judged by plain comparisons in the order critical high, high, critical low, low.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from schemas.assessment import DIFFICULTY_ORDER
from service.instruments import DEFINITIONS, assess, definition
from service.instruments.model import Choice, Coding, Item, YesNo
from service.instruments.model import Coding as DefCoding
from service.mappers import assessment as assessment_mapper
from service.mappers import codes, interpretation, narrative, response
from service.mappers.config import MappingConfig
from service.mappers.ids import SLOTS, base32_prefix, identifier_system, patient_urn, visit_urn
from service.mappers.questionnaire import questionnaire_canonical
from service.mappers.session import dosage_text
from service.monitoring import rules
from service.monitoring.model import MEASURES, PHASES

Json = dict[str, Any]
Ctx = tuple[list, Json, str, Any, Any, list, Json, str, Any]
Judge = tuple[list[tuple[str, float, Any]], Any, list[Json]]  # (checks in order, normal or None, ranges)
PHASED = ("in_progress", "completed", "stopped")


def _judges(config: MappingConfig) -> dict[tuple[str, Any], Judge]:
    """(measure, phase or None) -> how a value is judged there; absent where no rule judges it."""
    out: dict[tuple[str, Any], Judge] = {}
    for measure, spec in MEASURES.items():
        for phase in (*PHASES, None):
            found = rules.limits(config.protocol, measure, phase)
            if found is None:
                continue
            names = ("AA", "A", "AA", "A") if spec.ordinal else ("HH", "H", "LL", "L")
            tiers = (found.critical_high, found.high, found.critical_low, found.low)
            checks = [
                (t.comparison.op, t.comparison.limit, (interpretation.interpretation(n), n))
                for t, n in zip(tiers, names, strict=True)
                if t is not None
            ]
            normal = (interpretation.interpretation("N"), "N") if found.complete else None
            out[(measure, phase)] = (checks, normal, interpretation.reference_ranges(config.protocol, measure, phase))
    return out


def _coding(code: codes.Code | codes.LocalCode | Coding, base: str) -> Json:
    if isinstance(code, Coding):  # a definition's (service/instruments): LOINC here
        return {"system": codes.LOINC, "code": code.code, "display": code.display}
    system = codes.local_system(base, code.system_path) if isinstance(code, codes.LocalCode) else code.system
    return {"system": system, "code": code.code, "display": code.display}


class Floor:
    """Plain-dict builders of every kind for one config; all constants built in `__init__`."""

    def __init__(self, config: MappingConfig) -> None:
        self.config = config
        self.refs: dict[tuple[str, str], Json] = {}  # session references, made once per session
        self.ctxs: dict[str, Ctx] = {}  # default contexts of children sent on their own, once per session
        base = config.local_code_system_base

        def cc(*items: Any, text: str | None = None) -> Json:
            out: Json = {"coding": [_coding(item, base) for item in items]}
            if text is not None:
                out["text"] = text
            return out

        self.cc = cc
        self.system = {kind: identifier_system(kind, config) for kind in SLOTS}
        self.prefix = {(kind, s.part): s.prefix for kind, slots in SLOTS.items() for s in slots}
        self.primary = {(kind, s.part) for kind, slots in SLOTS.items() for s in slots if s.primary}
        self.unit = {u: {"unit": t, "system": codes.UCUM, "code": u} for u, t in codes.UNIT_TEXT.items()}
        self.vitals_category = [cc(codes.CATEGORY_VITAL_SIGNS)]
        self.survey_category = [cc(codes.CATEGORY_SURVEY)]
        self.vital = {
            name: ({"profile": [codes.VITAL_PROFILE_BASE + v.profile]}, cc(*v.codes, text=v.text))
            for name, v in codes.VITALS.items()
        }
        self.bp = (cc(codes.BP_SYSTOLIC), cc(codes.BP_DIASTOLIC))
        self.scale = {n: cc(c, text=codes.MONITORING_TEXT[n]) for n, c in codes.MONITORING_SCALES.items()}
        self.phq_items = [cc(item) for item in codes.PHQ9_ITEMS]
        self.phq_answers = [cc(a, text=a.display) for a in codes.PHQ9_ANSWERS]
        self.phq_difficulty = cc(codes.PHQ9_DIFFICULTY)
        self.phq_difficulty_answers = {k: cc(a, text=a.display) for k, a in codes.PHQ9_DIFFICULTY_ANSWERS.items()}
        self.phq_total = cc(codes.PHQ9_TOTAL, text=codes.PHQ9_TOTAL_TEXT)
        self.phq_panel = cc(codes.PHQ9_PANEL, text=codes.PHQ9_PANEL_TEXT)
        self.phq_severity = [(upper, cc(c, text=c.display)) for upper, c in codes.PHQ9_SEVERITY]
        item9 = codes.PHQ9_ITEM9_POSITIVE
        self.phq_item9 = [cc(codes.INTERPRETATION_POSITIVE, item9, text=item9.display)]
        self.phq_item9_note = [{"text": codes.PHQ9_ITEM9_NOTE}]
        phq9 = DEFINITIONS["phq9"]
        self.phq_questionnaire = questionnaire_canonical(config, phq9.id)
        self.phq_title = phq9.title
        self.phq_qr_items = [  # [item][score] -> the QuestionnaireResponse item
            [
                {"linkId": item.link_id, "text": item.text, "answer": [{"valueCoding": _coding(o.coding, base)}]}
                for o in item.answer.options
            ]
            for item in (*phq9.items, phq9.difficulty)
            if isinstance(item, Item) and isinstance(item.answer, Choice)
        ]
        self.flag_category = [cc(codes.FLAG_CATEGORY_SAFETY)]
        self.flag_code = cc(*codes.FLAG_CODE, text=codes.FLAG_TEXT)
        self.assessment_flag_code = cc(*codes.ASSESSMENT_FLAG_CODE, text=codes.ASSESSMENT_FLAG_TEXT)
        self.positive = [cc(codes.INTERPRETATION_POSITIVE)]
        self.instruments: dict[str, tuple[Any, ...]] = {}  # instrument -> its constant fragments, made once
        self.ae = {
            "serious": {k: cc(c) for k, c in codes.AE_SERIOUS.items()},
            "fatal": cc(codes.AE_SERIOUS_FATAL),
            "severity": {k: cc(c) for k, c in codes.AE_SEVERITIES.items()},
            "outcome": {k: cc(c) for k, c in codes.AE_OUTCOMES.items()},
            "causality": {k: [{"assessment": cc(c)}] for k, c in codes.AE_CAUSALITIES.items()},
            "action": {k: cc(c, text=c.display) for k, c in codes.AE_ACTIONS.items()},
            "event": {k: [_coding(c, base)] for k, c in codes.AE_EVENTS.items()},
        }
        self.ext_note = codes.local_system(base, codes.EXT_AE_NOTE)
        self.ext_action = codes.local_system(base, codes.EXT_AE_ACTION)
        self.ext_per_kg = codes.local_system(base, codes.EXT_DOSE_PER_KG)
        self.ext_intended = codes.local_system(base, codes.EXT_INTENDED_DOSAGE)
        self.ext_session = codes.local_system(base, codes.EXT_SESSION)
        self.ext_embedded = codes.local_system(base, codes.EXT_EMBEDDED_IN_SESSION)
        self.reasons = {n: cc(c, text=c.display) for n, c in codes.INDICATIONS.items()}
        self.reasons["trd"] = cc(codes.INDICATIONS["trd"], codes.TRD_LOCAL, text=codes.TRD_TEXT)
        self.proc_category = cc(codes.PROCEDURE_CATEGORY)
        self.proc_code = cc(codes.PROCEDURE_CODE, text=codes.PROCEDURE_TEXT)
        self.ma_category = cc(codes.MED_ADMIN_CATEGORY_OUTPATIENT)
        product = config.medication_product_coding
        extra = (codes.Code(*product),) if product else ()
        self.medication = cc(*codes.KETAMINE_CODINGS, *extra, text=codes.KETAMINE_TEXT)
        self.route = cc(codes.ROUTE_INTRAVENOUS)
        self.weight_code = cc(*codes.VITALS["body_weight"].codes, text=codes.DOSING_WEIGHT_TEXT)
        self.enc_class = _coding(codes.ENCOUNTER_CLASS, base)
        self.enc_type = [{"text": codes.ENCOUNTER_TEXT}]
        self.judges = _judges(config)
        self.o2 = cc(codes.SUPPLEMENTAL_O2, text=codes.SUPPLEMENTAL_O2_TEXT)
        self.said = {level: code.display for level, code in codes.INTERPRETATIONS.items()}
        self.said_lower = {level: code.display.lower() for level, code in codes.INTERPRETATIONS.items()}
        self.children = (
            ("vital_signs", self.vital_sign),
            ("monitoring_scores", self.monitoring_score),
            ("phq9_assessments", self.phq9_assessment),
            ("assessments", self.assessment),
            ("adverse_events", self.adverse_event),
        )

    # -- identity -------------------------------------------------------------------------------

    def ident(self, kind: str, key: str, part: str) -> tuple[str, Json]:
        seed = f"{self.config.identifier_system_base}|{kind}|{key}|{part}".encode()
        rid = f"{self.prefix[(kind, part)]}-{base32_prefix(hashlib.sha256(seed).digest())}"
        value = key if (kind, part) in self.primary else f"{key}/{part}"
        return rid, {"system": self.system[kind], "value": value}

    def session_ref(self, key: str, part: str, resource_type: str) -> Json:
        found = self.refs.get((key, part))
        if found is None:
            rid, ident = self.ident("infusion_session", key, part)
            found = self.refs[(key, part)] = {"reference": f"{resource_type}/{rid}", "identifier": ident}
        return found

    def own_ctx(self, key: str) -> Ctx:
        """`context.default_context`: the service's Encounter, status unknown (no partOf), MA suspected."""
        found = self.ctxs.get(key)
        if found is None:
            proc = self.session_ref(key, "procedure", "Procedure")
            encounter = {"reference": self.session_ref(key, "encounter", "Encounter")["reference"]}
            found = self.ctxs[key] = (
                [{"url": self.ext_session, "valueReference": proc}],
                encounter,
                "final",
                None,
                None,
                [proc],
                self.session_ref(key, "medication-administration", "MedicationAdministration"),
                "active",
                None,
            )
        return found

    def judge(self, measure: str, phase: Any, value: float) -> tuple[Any, list[Json]] | None:
        """((interpretation, level) or None, ranges), or None where no rule judges `measure`."""
        table = self.judges.get((measure, phase))
        if table is None:
            return None
        checks, normal, ranges = table
        for op, limit, level in checks:
            if op == ">":
                hit = value > limit
            elif op == ">=":
                hit = value >= limit
            elif op == "<":
                hit = value < limit
            else:
                hit = value <= limit
            if hit:
                return level, ranges
        return normal, ranges

    def qty(self, value: float, ucum: str) -> Json:
        return {"value": int(value) if float(value).is_integer() else value, **self.unit[ucum]}

    # -- kinds ----------------------------------------------------------------------------------

    def map(self, record: Any) -> list[Json]:
        return getattr(self, record.kind)(record)

    def vital_sign(self, r: Any, ctx: Ctx | None = None) -> list[Json]:
        if ctx is None and r.session_key is not None:
            ctx = self.own_ctx(r.session_key)
        rid, ident = self.ident("vital_sign", r.key, "observation")
        meta, code = self.vital[r.type]
        at = r.measured_at
        phase = None if ctx is None else _phase(ctx, at)
        if r.type == "blood_pressure":
            said = []
            parts = []
            for label, measure_code, value in (
                ("systolic", self.bp[0], r.systolic),
                ("diastolic", self.bp[1], r.diastolic),
            ):
                part: Json = {"code": measure_code, "valueQuantity": self.qty(value, "mm[Hg]")}
                judged = self.judge(label, phase, value)
                if judged is not None:
                    level, ranges = judged
                    if level is not None:
                        part["interpretation"] = level[0]
                        said.append(f"{label} {self.said_lower[level[1]]}")
                    part["referenceRange"] = ranges
                parts.append(part)
            words = None
            if said:
                words = ", ".join(said)
                words = words[0].upper() + words[1:]
        else:
            judged = self.judge(r.type, phase, r.value)
            level = None if judged is None else judged[0]
            words = None if level is None else self.said[level[1]]
        out: Json = {"resourceType": "Observation", "id": rid, "meta": meta}
        if ctx is None:
            out["text"] = narrative.vital_sign(r, False, False, words)
            out["identifier"] = [ident]
            out["status"] = "final"
        else:
            link, encounter, status, start, end, part_of = ctx[:6]
            during = start is not None and start <= at and (end is None or at <= end)
            out["text"] = narrative.vital_sign(r, during, status == "entered-in-error", words)
            out["extension"] = link
            out["identifier"] = [ident]
            if during:
                out["partOf"] = part_of
            out["status"] = status
        out["category"] = self.vitals_category
        out["code"] = code
        out["subject"] = {"reference": patient_urn(r.patient.mrn, self.config)}
        if ctx is not None:
            out["encounter"] = encounter
        out["effectiveDateTime"] = _dt(at)
        if r.type == "blood_pressure":
            out["component"] = parts
            return [out]
        out["valueQuantity"] = self.qty(r.value, r.unit)
        if judged is not None:
            if level is not None:
                out["interpretation"] = level[0]
            out["referenceRange"] = judged[1]
        if r.supplemental_o2 is not None:
            out["component"] = [{"code": self.o2, "valueBoolean": r.supplemental_o2}]
        return [out]

    def monitoring_score(self, r: Any, ctx: Ctx | None = None) -> list[Json]:
        ctx = ctx or self.own_ctx(r.session_key)
        link, encounter, status, start, end, part_of = ctx[:6]
        rid, ident = self.ident("monitoring_score", r.key, "observation")
        at = r.measured_at
        during = start is not None and start <= at and (end is None or at <= end)
        judged = self.judge(r.instrument, _phase(ctx, at), r.score)
        level = None if judged is None else judged[0]
        words = None if level is None else self.said[level[1]]
        out: Json = {
            "resourceType": "Observation",
            "id": rid,
            "text": narrative.monitoring_score(r, during, status == "entered-in-error", words),
            "extension": link,
            "identifier": [ident],
        }
        if during:
            out["partOf"] = part_of
        out.update(
            status=status,
            category=self.survey_category,
            code=self.scale[r.instrument],
            subject={"reference": patient_urn(r.patient.mrn, self.config)},
            encounter=encounter,
            effectiveDateTime=_dt(at),
            valueInteger=r.score,
        )
        if judged is not None:
            if level is not None:
                out["interpretation"] = level[0]
            out["referenceRange"] = judged[1]
        return [out]

    def adverse_event(self, r: Any, ctx: Ctx | None = None) -> list[Json]:
        if ctx is None and r.session_key is not None:
            ctx = self.own_ctx(r.session_key)
        rid, ident = self.ident("adverse_event", r.key, "adverse-event")
        fatal = r.outcome == "fatal"
        serious = codes.AE_SERIOUS_FATAL if fatal else codes.AE_SERIOUS[r.serious]
        out: Json = {"resourceType": "AdverseEvent", "id": rid, "text": narrative.adverse_event(r, serious)}
        ext = [] if ctx is None else [*ctx[0]]
        if r.action_taken is not None:
            ext.append({"url": self.ext_action, "valueCodeableConcept": self.ae["action"][r.action_taken]})
        if r.note is not None:
            ext.append({"url": self.ext_note, "valueString": r.note})
        if ext:
            out["extension"] = ext
        event: Json = {"coding": self.ae["event"][r.event]}
        if r.description is not None:
            event["text"] = r.description
        out.update(
            identifier=ident,
            actuality="actual",
            event=event,
            subject={"reference": patient_urn(r.patient.mrn, self.config)},
        )
        if ctx is not None:
            out["encounter"] = ctx[1]
        out.update(
            date=_dt(r.onset_at),
            recordedDate=_dt(r.recorded_at),
            seriousness=self.ae["fatal"] if fatal else self.ae["serious"][r.serious],
            severity=self.ae["severity"][r.severity],
            outcome=self.ae["outcome"][r.outcome],
        )
        if ctx is not None:
            suspect: Json = {"instance": ctx[6]}
            if r.causality is not None:
                suspect["causality"] = self.ae["causality"][r.causality]
            out["suspectEntity"] = [suspect]
        return [out]

    def survey_obs(
        self,
        kind: str,
        key: str,
        link: Any,
        part_of: Any,
        status: str,
        subject: Json,
        encounter: Json | None,
        when: str,
        derived: list[Json],
    ) -> Callable[..., Json]:
        """The Observation builder of one form: its panel, items and scores differ only in part, code and text."""

        def obs(part: str, code: Json, text: Json, **rest: Any) -> Json:
            rid, ident = self.ident(kind, key, part)
            out: Json = {"resourceType": "Observation", "id": rid, "text": text}
            if link:
                out["extension"] = link
            out["identifier"] = [ident]
            if part_of:
                out["partOf"] = part_of
            out.update(status=status, category=self.survey_category, code=code, subject=subject)
            if encounter is not None:
                out["encounter"] = encounter
            out.update(effectiveDateTime=when, **rest)
            out["derivedFrom"] = derived
            return out

        return obs

    def phq9_assessment(self, r: Any, ctx: Ctx | None = None) -> list[Json]:
        if ctx is None and r.session_key is not None:
            ctx = self.own_ctx(r.session_key)
        at = r.completed_at
        if ctx is None:
            link = part_of = encounter = None
            status = "final"
        else:
            link, encounter, status, start, end, part_of = ctx[:6]
            if start is None or at < start or (end is not None and at > end):
                part_of = None
        subject = {"reference": patient_urn(r.patient.mrn, self.config)}
        when = _dt(at)
        told = (narrative.at(at), bool(part_of), status == "entered-in-error")
        items = r.items
        qid, qident = self.ident("phq9_assessment", r.key, "response")
        response: Json = {
            "resourceType": "QuestionnaireResponse",
            "id": qid,
            "text": narrative.assessment_response(self.phq_title, 9, told[0], told[2]),
        }
        if link:
            response["extension"] = link
        response.update(
            identifier=qident,
            questionnaire=self.phq_questionnaire,
            status="entered-in-error" if told[2] else "completed",
            subject=subject,
        )
        if encounter is not None:
            response["encounter"] = encounter
        response["authored"] = when
        answered = [self.phq_qr_items[n][s] for n, s in enumerate(items)]
        if r.difficulty is not None:
            answered.append(self.phq_qr_items[9][DIFFICULTY_ORDER.index(r.difficulty)])
        response["item"] = answered
        derived = [{"reference": f"QuestionnaireResponse/{qid}"}]

        obs = self.survey_obs("phq9_assessment", r.key, link, part_of, status, subject, encounter, when, derived)

        members = [
            obs(
                f"item-{n}",
                self.phq_items[n - 1],
                narrative.phq9_item(n, s, *told),
                valueCodeableConcept=self.phq_answers[s],
            )
            for n, s in enumerate(items[:8], start=1)
        ]
        positive = items[8] > 0
        if positive:
            members.append(
                obs(
                    "item-9",
                    self.phq_items[8],
                    narrative.phq9_item(9, items[8], *told),
                    valueCodeableConcept=self.phq_answers[items[8]],
                    interpretation=self.phq_item9,
                )
            )
        else:
            members.append(
                obs(
                    "item-9",
                    self.phq_items[8],
                    narrative.phq9_item(9, 0, *told),
                    valueCodeableConcept=self.phq_answers[0],
                )
            )
        if r.difficulty is not None:
            members.append(
                obs(
                    "difficulty",
                    self.phq_difficulty,
                    narrative.phq9_difficulty(r.difficulty, *told),
                    valueCodeableConcept=self.phq_difficulty_answers[r.difficulty],
                )
            )
        severity = next(c for upper, c in self.phq_severity if r.total <= upper)
        if positive:
            members.append(
                obs(
                    "total",
                    self.phq_total,
                    narrative.phq9_total(r.total, True, *told),
                    valueQuantity=self.qty(r.total, "{score}"),
                    interpretation=[severity, *self.phq_item9],
                    note=self.phq_item9_note,
                )
            )
        else:
            members.append(
                obs(
                    "total",
                    self.phq_total,
                    narrative.phq9_total(r.total, False, *told),
                    valueQuantity=self.qty(r.total, "{score}"),
                    interpretation=[severity],
                )
            )
        panel_text = narrative.phq9_panel(r.difficulty is not None, *told)
        panel = obs(
            "panel", self.phq_panel, panel_text, hasMember=[{"reference": f"Observation/{m['id']}"} for m in members]
        )
        if not positive:
            return [response, *members, panel]
        fid, fident = self.ident("phq9_assessment", r.key, "flag")
        flag_status = "active" if ctx is None else ctx[7]
        flag: Json = {
            "resourceType": "Flag",
            "id": fid,
            "text": narrative.flag(told[0], flag_status == "entered-in-error"),
            "extension": [
                {"url": codes.EXT_FLAG_DETAIL, "valueReference": {"reference": f"Observation/{panel['id']}"}}
            ],
            "identifier": [fident],
            "status": flag_status,
            "category": self.flag_category,
            "code": self.flag_code,
            "subject": subject,
            "period": {"start": when},
        }
        if encounter is not None:
            flag["encounter"] = encounter
        return [response, *members, panel, flag]

    def _instrument(self, name: str) -> tuple[Any, ...]:
        """An instrument's constant fragments (`assessment.py` builds the same ones), made once."""
        found = self.instruments.get(name)
        if found is not None:
            return found
        config, defn = self.config, definition(name)
        concept, coding = assessment_mapper._concept, response.definition_coding
        answer_of = response.answer_coding
        every = [*defn.items, *([defn.difficulty] if defn.difficulty else [])]
        answers: dict[tuple[str, Any], tuple[Json, Json, str]] = {}  # (linkId, value) -> (QR item, value, words)
        for item in every:
            yes_no = isinstance(item.answer, YesNo)
            values: list[Any] = [True, False] if yes_no else list(range(item.answer.low, item.answer.high + 1))
            for value in values:
                c = answer_of(item, value)
                qr_answer = {"valueInteger": value} if c is None else {"valueCoding": coding(c, config)}
                obs_value = (
                    {"valueInteger": value} if c is None else {"valueCodeableConcept": concept(c, config, c.display)}
                )
                words = str(value) if c is None or c.display is None else c.display
                answers[(item.link_id, value)] = (
                    {"linkId": item.link_id, "text": item.text, "answer": [qr_answer]},
                    obs_value,
                    words,
                )
        codes_of = {item.link_id: concept(item.coding, config, item.text) for item in every}
        bands = {}
        if defn.bands is not None:
            for band in defn.bands.bands:
                bands[band.code] = [
                    concept(
                        DefCoding(band.code, band.display, local=True), config, band.display, defn.bands.system_path
                    )
                ]
        total = None if defn.total is None else concept(defn.total.coding, config, defn.total.label)
        subscales = [(rule.id, rule.label, concept(rule.coding, config, rule.label)) for rule in defn.subscales]
        triage = None
        if defn.triage is not None:
            t = defn.triage
            levels = {
                level.code: concept(
                    DefCoding(level.code, level.display, local=True), config, level.display, t.system_path
                )
                for level in (*t.levels, t.otherwise)
            }
            triage = (concept(t.coding, config, t.label), levels, [{"text": t.note}], {"text": t.method})
        panel_code = defn.panel if defn.panel is not None else DefCoding(defn.id, defn.title, local=True)
        found = self.instruments[name] = (
            defn,
            answers,
            codes_of,
            bands,
            total,
            subscales,
            triage,
            concept(panel_code, config, defn.title),
            questionnaire_canonical(config, defn.id),
        )
        return found

    def assessment(self, r: Any, ctx: Ctx | None = None) -> list[Json]:
        if ctx is None and r.session_key is not None:
            ctx = self.own_ctx(r.session_key)
        defn, answers, codes_of, bands, total, subscales, triage, panel_code, canonical = self._instrument(r.instrument)
        at = r.completed_at
        if ctx is None:
            link = part_of = encounter = None
            status, qr_status = "final", "completed"
        else:
            link, encounter, status, start, end, part_of = ctx[:6]
            if start is None or at < start or (end is not None and at > end):
                part_of = None
            qr_status = "entered-in-error" if status == "entered-in-error" else "completed"
        subject = {"reference": patient_urn(r.patient.mrn, self.config)}
        when = _dt(at)
        told = (narrative.at(at), bool(part_of), status == "entered-in-error")
        qid, qident = self.ident("assessment", r.key, "response")
        derived = [{"reference": f"QuestionnaireResponse/{qid}"}]

        obs = self.survey_obs("assessment", r.key, link, part_of, status, subject, encounter, when, derived)

        result = assess(defn, r.items, self.config.thresholds.of(defn.id))
        qr_items, members = [], []
        for item, value in zip(defn.items, r.items, strict=True):
            if value is None:
                continue
            qr_item, obs_value, words = answers[(item.link_id, value)]
            qr_items.append(qr_item)
            positive = item.link_id in result.positives
            extra = {**obs_value, "interpretation": self.positive} if positive else obs_value
            members.append(
                obs(
                    f"item-{item.link_id}",
                    codes_of[item.link_id],
                    narrative.assessment_answer(item.text, words, positive, *told),
                    **extra,
                )
            )
        answered = len(qr_items)
        if defn.difficulty is not None and r.difficulty is not None:
            item = defn.difficulty
            qr_item, obs_value, words = answers[(item.link_id, DIFFICULTY_ORDER.index(r.difficulty))]
            qr_items.append(qr_item)
            members.append(
                obs(
                    "difficulty",
                    codes_of[item.link_id],
                    narrative.assessment_answer(item.text, words, False, *told),
                    **obs_value,
                )
            )
        if total is not None and result.total is not None:
            band = result.band
            extra = {"interpretation": bands[band.code]} if band is not None and bands else {}
            members.append(
                obs(
                    "total",
                    total,
                    narrative.assessment_score(defn.total.label, result.total, band.display if extra else None, *told),
                    valueQuantity=self.qty(result.total, "{score}"),
                    **extra,
                )
            )
        for rule_id, label, code in subscales:
            value = result.subscales[rule_id]
            members.append(
                obs(
                    f"score-{rule_id}",
                    code,
                    narrative.assessment_score(label, value, None, *told),
                    valueQuantity=self.qty(value, "{score}"),
                )
            )
        if triage is not None and result.triage is not None:
            code, levels, note, method = triage
            level = result.triage
            members.append(
                obs(
                    "triage",
                    code,
                    narrative.assessment_triage(defn.triage.label, level.display, defn.triage.note, *told),
                    valueCodeableConcept=levels[level.code],
                    note=note,
                    method=method,
                )
            )
        panel = obs(
            "panel",
            panel_code,
            narrative.assessment_panel(defn.title, len(members), *told),
            hasMember=[{"reference": f"Observation/{m['id']}"} for m in members],
        )
        qr: Json = {
            "resourceType": "QuestionnaireResponse",
            "id": qid,
            "text": narrative.assessment_response(defn.title, answered, told[0], qr_status == "entered-in-error"),
        }
        if link:
            qr["extension"] = link
        qr.update(identifier=qident, questionnaire=canonical, status=qr_status, subject=subject)
        if encounter is not None:
            qr["encounter"] = encounter
        qr.update(authored=when, item=qr_items)
        out = [qr, *members, panel]
        if result.raises_flag:
            fid, fident = self.ident("assessment", r.key, "flag")
            flag_status = "active" if ctx is None else ctx[7]
            flag: Json = {
                "resourceType": "Flag",
                "id": fid,
                "text": narrative.assessment_flag(told[0], flag_status == "entered-in-error"),
                "extension": [
                    {"url": codes.EXT_FLAG_DETAIL, "valueReference": {"reference": f"Observation/{panel['id']}"}}
                ],
                "identifier": [fident],
                "status": flag_status,
                "category": self.flag_category,
                "code": self.assessment_flag_code,
                "subject": subject,
                "period": {"start": when},
            }
            if encounter is not None:
                flag["encounter"] = encounter
            out.append(flag)
        return out

    def infusion_session(self, r: Any) -> list[Json]:
        key, status = r.key, r.status
        subject = {"reference": patient_urn(r.patient.mrn, self.config)}
        period = {"start": _dt(r.started_at)}
        if r.ended_at is not None:
            period["end"] = _dt(r.ended_at)
        actor = None
        if r.clinician is not None:
            actor = {"identifier": {"system": self.config.practitioner_identifier_system, "value": r.clinician.id}}
            if r.clinician.name is not None:
                actor["display"] = r.clinician.name
        proc_ref = self.session_ref(key, "procedure", "Procedure")
        if r.visit_id is None:
            encounter = {"reference": self.session_ref(key, "encounter", "Encounter")["reference"]}
        else:
            encounter = {"reference": visit_urn(r.visit_id, self.config)}
        not_done = status == "not_done"
        reasons = [self.reasons[i] for i in r.indications]
        # ids from the cached references ("Procedure/<id>", "MedicationAdministration/<id>"): no second hash
        proc: Json = {
            "resourceType": "Procedure",
            "id": proc_ref["reference"][len("Procedure/") :],
            "text": narrative.procedure(r),
            "identifier": [proc_ref["identifier"]],
            "status": codes.PROCEDURE_STATUS[status],
        }
        if r.stop_reason is not None:
            proc["statusReason"] = {"text": r.stop_reason}
        proc.update(category=self.proc_category, code=self.proc_code, subject=subject, encounter=encounter)
        if not not_done:
            proc["performedPeriod"] = period
        if actor:
            proc["performer"] = [{"actor": actor}]
        proc["reasonCode"] = reasons
        if r.note is not None:
            proc["note"] = [{"text": r.note}]
        out = [proc]
        part_of = [proc_ref]
        administered = status not in ("planned", "not_done")
        if status in codes.MED_ADMIN_STATUS:
            out.append(self._administration(r, subject, encounter, period, actor, part_of, not_done))
        dose = r.dose
        retracted = status == "entered_in_error"
        obs_status = "entered-in-error" if retracted else "final"
        if dose is not None and dose.weight_kg is not None:
            wid, wident = self.ident("infusion_session", key, "dosing-weight")
            weight: Json = {
                "resourceType": "Observation",
                "id": wid,
                "meta": self.vital["body_weight"][0],
                "text": narrative.dosing_weight(dose.weight_kg, r.started_at, retracted),
                "identifier": [wident],
            }
            if administered:
                weight["partOf"] = part_of
            weight.update(
                status=obs_status,
                category=self.vitals_category,
                code=self.weight_code,
                subject=subject,
                encounter=encounter,
                effectiveDateTime=period["start"],
                valueQuantity=self.qty(dose.weight_kg, "kg"),
            )
            out.append(weight)
        if r.visit_id is None:
            eid, eident = self.ident("infusion_session", key, "encounter")
            enc: Json = {
                "resourceType": "Encounter",
                "id": eid,
                "text": narrative.encounter(r),
                "identifier": [eident],
                "status": codes.ENCOUNTER_STATUS[status],
                "class": self.enc_class,
                "type": self.enc_type,
                "subject": subject,
            }
            if not not_done:
                enc["period"] = period
            enc["reasonCode"] = reasons
            out.append(enc)
        ctx: Ctx = (
            [{"url": self.ext_embedded, "valueReference": proc_ref}],
            encounter,
            obs_status,
            r.started_at if administered else None,
            r.ended_at,
            part_of,
            self.session_ref(key, "medication-administration", "MedicationAdministration")
            if administered
            else proc_ref,
            "entered-in-error" if retracted else "active",
            "before" if status == "not_done" else "timed" if status in PHASED else None,
        )
        for field, builder in self.children:
            for child in getattr(r, field):
                out.extend(builder(child, ctx))
        return out

    def _administration(
        self, r: Any, subject: Json, encounter: Json, period: Json, actor: Json | None, part_of: list, not_done: bool
    ) -> Json:
        mref = self.session_ref(r.key, "medication-administration", "MedicationAdministration")
        ma: Json = {
            "resourceType": "MedicationAdministration",
            "id": mref["reference"][len("MedicationAdministration/") :],
        }
        dose = r.dose
        dose_text = None if dose is None else dosage_text(r, dose)
        ma["text"] = narrative.administration(r, dose_text)
        if not_done and dose is not None:
            intended: Json = {}
            if dose.mg_per_kg is not None:
                intended["extension"] = [{"url": self.ext_per_kg, "valueQuantity": self.qty(dose.mg_per_kg, "mg/kg")}]
            intended["text"] = codes.INTENDED_DOSAGE_PREFIX + dose_text
            intended["route"] = self.route
            dose_and_rate: Json = {"doseQuantity": self.qty(dose.total_mg, "mg")}
            if dose.rate is not None:
                dose_and_rate["rateQuantity"] = self.qty(dose.rate.value, dose.rate.unit)
            intended["doseAndRate"] = [dose_and_rate]
            ma["extension"] = [{"url": self.ext_intended, "valueDosage": intended}]
        ma.update(identifier=[mref["identifier"]], partOf=part_of, status=codes.MED_ADMIN_STATUS[r.status])
        if r.stop_reason is not None:
            ma["statusReason"] = [{"text": r.stop_reason}]
        ma.update(
            category=self.ma_category,
            medicationCodeableConcept=self.medication,
            subject=subject,
            context=encounter,
            effectivePeriod=period,
        )
        if actor:
            ma["performer"] = [{"actor": actor}]
        if dose is not None and not not_done:
            dosage: Json = {}
            if dose.mg_per_kg is not None:
                dosage["extension"] = [{"url": self.ext_per_kg, "valueQuantity": self.qty(dose.mg_per_kg, "mg/kg")}]
            dosage.update(text=dose_text, route=self.route, dose=self.qty(dose.total_mg, "mg"))
            if dose.rate is not None:
                dosage["rateQuantity"] = self.qty(dose.rate.value, dose.rate.unit)
            ma["dosage"] = dosage
        return ma


def _phase(ctx: Ctx, at: Any) -> Any:
    """before / during / after, or None when the context cannot place `at` (see SessionContext.phase)."""
    rule = ctx[8]
    if rule != "timed":
        return rule
    start, end = ctx[3], ctx[4]
    if at < start:
        return "before"
    return "during" if end is None or at <= end else "after"


def _dt(value: Any) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
