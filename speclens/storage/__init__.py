"""Where bytes live: Zarr dataset and embedding stores, the Parquet warehouse, manifests, atomic commits.

Every location is an fsspec URL (local path, file://, s3://, memory://).
"""
