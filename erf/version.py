"""The package version (layer 0: read by the packaging, the console command and provenance)."""

__version__ = "0.1.0"
