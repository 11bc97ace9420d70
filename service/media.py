"""The media types the service speaks, named once."""

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
NDJSON = "application/x-ndjson"
