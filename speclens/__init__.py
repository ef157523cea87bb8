"""speclens: explain how two embedding models differ (SPEC, arXiv 2506.06231) at warehouse scale."""

__version__ = "0.1.0"
