"""pyea's version: light enough for setup.cfg, gunicorn's master and every layer to read."""

__version__ = "0.1.0"
