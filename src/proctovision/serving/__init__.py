"""Serving in the clinic: the FastAPI app and the clinician's pages (stills and live video), request batching,
withheld answers and their audited "show anyway", the offline API docs, the audit trail, and PACS over DICOMweb (retrieve, predict, store SR and overlays, watch for new studies)."""
