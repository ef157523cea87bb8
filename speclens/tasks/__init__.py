"""Prefect tasks: thin wrappers that pass paths, ids and hashes, never arrays."""
