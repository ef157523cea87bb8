"""Where bytes live: Zarr dataset and embedding stores (on one sharded-store base), the Parquet
warehouse, manifests, commit markers, and where each lives under an output root (``layout``).

Every location is an fsspec URL (local path, file://, s3://, memory://).
"""
