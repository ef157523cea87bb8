"""The mathematics of SPEC: feature maps, Gram accumulator, eigensolver, scores, exact reference.

Imports numpy, scipy and (optionally) torch only: no Prefect, Dask, Zarr or file system.
"""
