# infusion-fhir: the two README commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
HAPI_PORT ?= 8080
LOCAL_FHIR := http://localhost:$(HAPI_PORT)/fhir
HAPICTL := tools/hapi-server/hapictl
TOXIPROXYCTL := tools/faults/toxiproxyctl
export HAPI_PORT

.PHONY: run test test-postgres preflight lint faults venv openapi-client-tool hapi-up hapi-down hapi-status medplum-up medplum-down medplum-status smart-up smart-down smart-status schemas openapi questionnaires charts bench clean

## venv: the virtualenv at .venv with the project and its test tools (pinned by constraints.txt)
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

## openapi-client-tool: openapi-python-client in a venv of its own (.venv-openapi-client), for the generated-client
## test (tests/integration/test_generated_client.py); its typer pin conflicts with the service's (tools/openapi-client/)
OPENAPI_CLIENT_VENV := .venv-openapi-client
openapi-client-tool: $(OPENAPI_CLIENT_VENV)/.installed
$(OPENAPI_CLIENT_VENV)/.installed: tools/openapi-client/constraints.txt
	@test -x $(OPENAPI_CLIENT_VENV)/bin/python || $(PYTHON) -m venv $(OPENAPI_CLIENT_VENV)
	$(OPENAPI_CLIENT_VENV)/bin/python -m pip install --quiet -c tools/openapi-client/constraints.txt openapi-python-client
	@touch $@

## hapi-up / hapi-down: the local HAPI FHIR R4 server (built from Maven Central on first use); H2 by default,
## HAPI_DB=postgres for HAPI on its own PostgreSQL cluster (tools/hapi-server/README.md)
hapi-up:
	@$(HAPICTL) up
hapi-down:
	@$(HAPICTL) down
hapi-status:
	@$(HAPICTL) status

## medplum-up / medplum-down: a second, independently written FHIR engine for compatibility checks: Medplum's FHIR
## router over its in-memory repository behind our own listener (:8093, MEDPLUM_PORT), installed by npm ci on first
## use; data lives in memory only (tools/medplum/README.md, docs/compatibility.md)
medplum-up:
	@tools/medplum/medplumctl up
medplum-down:
	@tools/medplum/medplumctl down
medplum-status:
	@tools/medplum/medplumctl status

## smart-up / smart-down: the SMART test bed beside the plain HAPI: Keycloak (realm `infusion`, :8180) and a
## token-protected HAPI (:8091); smart-up makes the service's key pair if missing and writes
## tools/smart/.run/client.env (tools/keycloak/README.md)
smart-up:
	@tools/smart/smartctl up
smart-down:
	@tools/smart/smartctl down
smart-status:
	@tools/smart/smartctl status

## run: the service on :8000, on the local HAPI unless FHIR_BASE_URL names another server
run: venv
	@if [ -z "$$FHIR_BASE_URL" ]; then $(HAPICTL) up || exit 1; fi
	FHIR_BASE_URL="$${FHIR_BASE_URL:-$(LOCAL_FHIR)}" $(VENV)/bin/infusion-fhir serve --port 8000

## test: the whole suite (unit and integration) on HAPI with H2; then the FHIR-semantics files of the integration
## suite again on the Medplum engine bed (MEDPLUM_PASS_FILES: what a test there cannot do is left out and named, see
## tests/integration/beds.py); then the integration tests on HAPI with PostgreSQL (test-postgres). Starts each local
## server if none answers, once per run, and stops what it started
MEDPLUM_PORT ?= 8093
MEDPLUM_PASS_FILES := $(addprefix tests/integration/,test_api_sync.py test_batch_sync.py test_clinical_safety.py \
	test_outcome_trend.py test_session_replanned.py test_one_flag_per_patient.py test_provenance.py \
	test_monitoring_summary.py test_embedded_assessments.py test_assessments.py test_questionnaires.py \
	test_mapped_resources_validate.py test_request_id.py test_no_phi_in_logs.py test_audit.py \
	test_interpretation_paths.py)
test: preflight venv openapi-client-tool faults lint
	@tools/ensure-chromium  # the browser of the offline /docs test; installs Debian's chromium only when missing
	@began=$$SECONDS; started=0; mstarted=0; export MEDPLUM_PORT=$(MEDPLUM_PORT); \
	if [ -z "$$FHIR_BASE_URL" ] && ! curl -sf -o /dev/null "$(LOCAL_FHIR)/metadata"; then \
		$(HAPICTL) up || exit 1; started=1; \
	fi; \
	if ! tools/medplum/medplumctl status >/dev/null 2>&1; then \
		tools/medplum/medplumctl up || { if [ $$started = 1 ]; then $(HAPICTL) down; fi; exit 1; }; mstarted=1; \
	fi; \
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then $(HAPICTL) down; fi; \
	echo "make test: whole suite on HAPI/H2: $$((SECONDS - began)) s (exit $$rc)"; \
	if [ $$rc = 0 ]; then \
		began=$$SECONDS; \
		INFUSION_FHIR_TEST_BED=medplum FHIR_BASE_URL="http://127.0.0.1:$(MEDPLUM_PORT)/fhir" \
			$(VENV)/bin/python -m pytest $(MEDPLUM_PASS_FILES) $(PYTEST_ARGS); rc=$$?; \
		echo "make test: FHIR-semantics integration tests on the Medplum engine: $$((SECONDS - began)) s (exit $$rc)"; \
	fi; \
	if [ $$mstarted = 1 ]; then tools/medplum/medplumctl down; fi; \
	if [ $$rc != 0 ]; then exit $$rc; fi
	@$(MAKE) --no-print-directory test-postgres

## test-postgres: the integration tests on HAPI with PostgreSQL (HAPI_DB=postgres, port PG_HAPI_PORT). The SMART
## bed, the fault proxies, the Medplum bed, the offline-docs browser test and the test-bed checks are left out here: they ran in
## the H2 pass, and each of those beds starts once per run (none of them is about how HAPI stores data).
## A HAPI it starts it stops, and a cluster it made it deletes (hapictl reset), so nothing stays in /var/tmp.
PG_HAPI_PORT ?= 8092
PG_PASS_IGNORES := --ignore=tests/integration/test_smart.py --ignore=tests/integration/test_faults.py \
	--ignore=tests/integration/test_docs_offline.py --ignore=tests/integration/test_beds_private_clone.py \
	--ignore=tests/integration/test_medplum_bed.py --ignore=tests/integration/test_on_medplum.py
test-postgres: venv openapi-client-tool
	@if [ -n "$$FHIR_BASE_URL" ]; then echo "make test-postgres: FHIR_BASE_URL is set; the PostgreSQL pass needs the local HAPI"; exit 0; fi; \
	began=$$SECONDS; export HAPI_DB=postgres HAPI_PORT=$(PG_HAPI_PORT); \
	if ! curl -sf -o /dev/null "http://localhost:$(PG_HAPI_PORT)/fhir/metadata"; then \
		fresh=1; $(HAPICTL) cluster >/dev/null && fresh=0; \
		trap '$(HAPICTL) down; if [ $$fresh = 1 ]; then $(HAPICTL) reset; fi' EXIT; \
		$(HAPICTL) up || exit 1; \
	fi; \
	FHIR_BASE_URL="http://localhost:$(PG_HAPI_PORT)/fhir" $(VENV)/bin/python -m pytest tests/integration $(PG_PASS_IGNORES) $(PYTEST_ARGS); rc=$$?; \
	echo "make test: integration tests on HAPI/PostgreSQL: $$((SECONDS - began)) s (exit $$rc)"; \
	exit $$rc

## preflight: fails at once, in one line saying what to do, where a test bed cannot work from this clone (before
## minutes of tests). Only the PostgreSQL bed runs as another user (postgres, under root) and so needs a directory
## that user can reach; Keycloak, the HAPIs, Toxiproxy and Chromium run as the caller (tools/hapi-server/README.md).
preflight:
	@if [ -z "$$FHIR_BASE_URL" ]; then HAPI_DB=postgres $(HAPICTL) preflight; fi

## lint: the code checks itself: ruff (lint and format) and mypy --strict on service/ and schemas/ (pyproject.toml)
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## faults: Toxiproxy for the fault-injection tests (tests/integration/test_faults.py), built with Go on first use;
## without Go they skip, except under CI
faults:
	@$(TOXIPROXYCTL) build || [ -z "$$CI" ]

## bench: the benchmarks under bench/ (ours vs the ceiling and the naive way), written to BENCHMARKS.md.
## Without FHIR_BASE_URL they run on a dedicated local HAPI (own port and empty database, stopped afterwards),
## so that every run meets the same server state and the development server's data is left alone.
BENCH_HAPI_PORT ?= 8089
bench: venv
	@if [ -n "$$FHIR_BASE_URL" ]; then exec $(VENV)/bin/python -m bench $(BENCH_ARGS); fi; \
	export HAPI_RUN_DIR="$(CURDIR)/tools/hapi-server/.run-bench" HAPI_PORT=$(BENCH_HAPI_PORT); \
	trap '$(HAPICTL) down' EXIT; \
	$(HAPICTL) down >/dev/null && $(HAPICTL) reset && $(HAPICTL) up || exit 1; \
	FHIR_BASE_URL="http://localhost:$(BENCH_HAPI_PORT)/fhir" BENCH_DISPOSABLE_SERVER=1 $(VENV)/bin/python -m bench $(BENCH_ARGS)

## schemas: regenerate schemas/json/ from the record models
schemas: venv
	$(VENV)/bin/python -m schemas.export

## openapi: regenerate docs/openapi.json from the routes (a unit test fails while it is stale)
openapi: venv
	$(VENV)/bin/python -m service.openapi

## questionnaires: regenerate the published Questionnaires, docs/fhir/Questionnaire-<id>.json (a unit test fails while
## one is stale)
questionnaires: venv
	$(VENV)/bin/python -m service.mappers.questionnaire

## charts: redraw the example monitoring charts, docs/charts/<kind>.png (a normal, a hypertensive and a desaturating
## demo session; a unit test fails while one is stale)
charts: venv
	$(VENV)/bin/python -m service.demo.charts

clean:
	rm -rf $(VENV) $(OPENAPI_CLIENT_VENV) .pytest_cache .hypothesis
