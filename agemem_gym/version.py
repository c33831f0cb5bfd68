"""The package version, kept in one place so setuptools can read it without importing deps."""

__version__ = "0.1.0"
