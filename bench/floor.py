"""The floor of mapping: the same FHIR JSON as plain dict literals, no checks, no caches to look up.

This is what the output costs to build at the least: every constant fragment made once up front,
every record turned into dicts with no validation and no function layers. The mapping benchmark
asserts that it emits byte for byte what ours emits, so both produce the same resources.
"""

from __future__ import annotations

import hashlib
from typing import Any

from service.mappers import codes
from service.mappers.config import MappingConfig
from service.mappers.ids import SLOTS, base32_prefix, identifier_system, patient_urn
from service.mappers.session import dosage_text

Json = dict[str, Any]


def _coding(code: codes.Code | codes.LocalCode, base: str) -> Json:
    system = codes.local_system(base, code.system_path) if isinstance(code, codes.LocalCode) else code.system
    return {"system": system, "code": code.code, "display": code.display}


class Floor:
    """Plain-dict builders of every kind for one config; all constants built in `__init__`."""

    def __init__(self, config: MappingConfig) -> None:
        self.config = config
        self.refs: dict[tuple[str, str], Json] = {}  # session references, made once per session
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
        self.phq_item9 = cc(codes.PHQ9_ITEM9_POSITIVE, text=codes.PHQ9_ITEM9_POSITIVE.display)
        self.ae = {
            "serious": {k: cc(c) for k, c in codes.AE_SERIOUS.items()},
            "severity": {k: cc(c) for k, c in codes.AE_SEVERITIES.items()},
            "outcome": {k: cc(c) for k, c in codes.AE_OUTCOMES.items()},
            "causality": {k: cc(c) for k, c in codes.AE_CAUSALITIES.items()},
            "action": {k: cc(c, text=c.display) for k, c in codes.AE_ACTIONS.items()},
        }
        self.ext_note = codes.local_system(base, codes.EXT_AE_NOTE)
        self.ext_action = codes.local_system(base, codes.EXT_AE_ACTION)
        self.ext_per_kg = codes.local_system(base, codes.EXT_DOSE_PER_KG)
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

    def qty(self, value: float, ucum: str) -> Json:
        return {"value": int(value) if float(value).is_integer() else value, **self.unit[ucum]}

    # -- kinds ----------------------------------------------------------------------------------

    def map(self, record: Any) -> list[Json]:
        return getattr(self, record.kind)(record)

    def vital_sign(self, r: Any) -> list[Json]:
        rid, ident = self.ident("vital_sign", r.key, "observation")
        meta, code = self.vital[r.type]
        out: Json = {"resourceType": "Observation", "id": rid, "meta": meta, "identifier": [ident]}
        if r.session_key is not None:
            out["partOf"] = [self.session_ref(r.session_key, "procedure", "Procedure")]
        out["status"] = "final"
        out["category"] = self.vitals_category
        out["code"] = code
        out["subject"] = {"reference": patient_urn(r.patient.mrn, self.config)}
        out["effectiveDateTime"] = _dt(r.measured_at)
        if r.type == "blood_pressure":
            out["component"] = [
                {"code": self.bp[0], "valueQuantity": self.qty(r.systolic, "mm[Hg]")},
                {"code": self.bp[1], "valueQuantity": self.qty(r.diastolic, "mm[Hg]")},
            ]
        else:
            out["valueQuantity"] = self.qty(r.value, r.unit)
        return [out]

    def monitoring_score(self, r: Any) -> list[Json]:
        rid, ident = self.ident("monitoring_score", r.key, "observation")
        return [{
            "resourceType": "Observation", "id": rid, "identifier": [ident],
            "partOf": [self.session_ref(r.session_key, "procedure", "Procedure")],
            "status": "final", "category": self.survey_category, "code": self.scale[r.instrument],
            "subject": {"reference": patient_urn(r.patient.mrn, self.config)},
            "effectiveDateTime": _dt(r.measured_at), "valueInteger": r.score,
        }]

    def adverse_event(self, r: Any) -> list[Json]:
        rid, ident = self.ident("adverse_event", r.key, "adverse-event")
        out: Json = {"resourceType": "AdverseEvent", "id": rid}
        ext = []
        if r.action_taken is not None:
            ext.append({"url": self.ext_action, "valueCodeableConcept": self.ae["action"][r.action_taken]})
        if r.note is not None:
            ext.append({"url": self.ext_note, "valueString": r.note})
        if ext:
            out["extension"] = ext
        code = codes.AE_EVENTS[r.event]
        event = {"coding": [_coding(code, self.config.local_code_system_base)]}
        text = r.description
        if text is None and isinstance(code, codes.LocalCode):
            text = code.display
        if text is not None:
            event["text"] = text
        out.update(
            identifier=ident, actuality="actual", event=event,
            subject={"reference": patient_urn(r.patient.mrn, self.config)},
            date=_dt(r.onset_at), recordedDate=_dt(r.recorded_at),
            seriousness=self.ae["serious"][r.serious], severity=self.ae["severity"][r.severity],
            outcome=self.ae["outcome"][r.outcome],
        )
        if r.session_key is not None:
            instance = self.session_ref(r.session_key, "medication-administration", "MedicationAdministration")
            suspect: Json = {"instance": instance}
            if r.causality is not None:
                suspect["causality"] = [{"assessment": self.ae["causality"][r.causality]}]
            out["suspectEntity"] = [suspect]
        return [out]

    def phq9_assessment(self, r: Any) -> list[Json]:
        part_of = [self.session_ref(r.session_key, "procedure", "Procedure")] if r.session_key is not None else None
        subject = {"reference": patient_urn(r.patient.mrn, self.config)}
        when = _dt(r.completed_at)

        def obs(part: str, code: Json, **rest: Any) -> Json:
            rid, ident = self.ident("phq9_assessment", r.key, part)
            out: Json = {"resourceType": "Observation", "id": rid, "identifier": [ident]}
            if part_of:
                out["partOf"] = part_of
            out.update(status="final", category=self.survey_category, code=code, subject=subject,
                       effectiveDateTime=when, **rest)
            return out

        members = [
            obs(f"item-{n}", self.phq_items[n - 1], valueCodeableConcept=self.phq_answers[s])
            for n, s in enumerate(r.items, start=1)
        ]
        if r.difficulty is not None:
            members.append(obs("difficulty", self.phq_difficulty,
                               valueCodeableConcept=self.phq_difficulty_answers[r.difficulty]))
        interpretation = [next(c for upper, c in self.phq_severity if r.total <= upper)]
        extra: Json = {}
        if r.items[8] > 0:
            interpretation.append(self.phq_item9)
            extra["note"] = [{"text": codes.PHQ9_ITEM9_NOTE}]
        members.append(obs("total", self.phq_total, valueQuantity=self.qty(r.total, "{score}"),
                           interpretation=interpretation, **extra))
        panel = obs("panel", self.phq_panel, hasMember=[{"reference": f"Observation/{m['id']}"} for m in members])
        return [*members, panel]

    def infusion_session(self, r: Any) -> list[Json]:
        subject = {"reference": patient_urn(r.patient.mrn, self.config)}
        period = {"start": _dt(r.started_at)}
        if r.ended_at is not None:
            period["end"] = _dt(r.ended_at)
        actor = None
        if r.clinician is not None:
            actor = {"identifier": {"system": self.config.practitioner_identifier_system, "value": r.clinician.id}}
            if r.clinician.name is not None:
                actor["display"] = r.clinician.name
        rid, ident = self.ident("infusion_session", r.key, "procedure")
        proc: Json = {"resourceType": "Procedure", "id": rid, "identifier": [ident],
                      "status": codes.PROCEDURE_STATUS[r.status]}
        if r.stop_reason is not None:
            proc["statusReason"] = {"text": r.stop_reason}
        proc.update(category=self.proc_category, code=self.proc_code, subject=subject, performedPeriod=period)
        if actor:
            proc["performer"] = [{"actor": actor}]
        proc["reasonCode"] = [self.reasons[i] for i in r.indications]
        if r.note is not None:
            proc["note"] = [{"text": r.note}]
        out = [proc]
        part_of = [{"reference": f"Procedure/{rid}", "identifier": ident}]
        if r.status in codes.MED_ADMIN_STATUS:
            out.append(self._administration(r, subject, period, actor, part_of))
        if r.dose is not None and r.dose.weight_kg is not None:
            wid, wident = self.ident("infusion_session", r.key, "dosing-weight")
            out.append({
                "resourceType": "Observation", "id": wid, "meta": self.vital["body_weight"][0],
                "identifier": [wident], "partOf": part_of,
                "status": "entered-in-error" if r.status == "entered_in_error" else "final",
                "category": self.vitals_category, "code": self.weight_code, "subject": subject,
                "effectiveDateTime": period["start"], "valueQuantity": self.qty(r.dose.weight_kg, "kg"),
            })
        for field in ("vital_signs", "monitoring_scores", "phq9_assessments", "adverse_events"):
            for child in getattr(r, field):
                out.extend(self.map(child))
        return out

    def _administration(self, r: Any, subject: Json, period: Json, actor: Json | None, part_of: list) -> Json:
        mid, mident = self.ident("infusion_session", r.key, "medication-administration")
        ma: Json = {"resourceType": "MedicationAdministration", "id": mid, "identifier": [mident],
                    "partOf": part_of, "status": codes.MED_ADMIN_STATUS[r.status]}
        if r.stop_reason is not None:
            ma["statusReason"] = [{"text": r.stop_reason}]
        ma.update(category=self.ma_category, medicationCodeableConcept=self.medication, subject=subject,
                  effectivePeriod=period)
        if actor:
            ma["performer"] = [{"actor": actor}]
        dose = r.dose
        if dose is not None:
            dosage: Json = {}
            if dose.mg_per_kg is not None:
                dosage["extension"] = [{"url": self.ext_per_kg, "valueQuantity": self.qty(dose.mg_per_kg, "mg/kg")}]
            dosage.update(text=dosage_text(r), route=self.route, dose=self.qty(dose.total_mg, "mg"))
            if dose.rate is not None:
                dosage["rateQuantity"] = self.qty(dose.rate.value, dose.rate.unit)
            ma["dosage"] = dosage
        return ma


def _dt(value: Any) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
