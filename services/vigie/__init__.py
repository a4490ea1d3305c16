"""Vigie: video analytics on existing CCTV cameras that alerts operators and never identifies anyone."""

__version__ = "0.1.0"
