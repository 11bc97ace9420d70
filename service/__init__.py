"""infusion-fhir: ketamine infusion clinic records to FHIR R4, and their sync with a FHIR server."""
