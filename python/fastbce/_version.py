"""The version of fastbce (one place, read by the package and by ``build_info``)."""

__version__ = "0.1.0"
