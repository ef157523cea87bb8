"""Prefect flows: ingest, embed, compare, align, audit (end to end)."""
