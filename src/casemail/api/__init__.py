"""The REST API (FastAPI); OpenAPI at /api/v1/openapi.json."""
