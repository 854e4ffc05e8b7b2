"""The API contract (openapi.yaml) and the JSON Schemas, shipped as package data."""
