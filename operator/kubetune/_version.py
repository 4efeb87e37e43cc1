"""The release: pyproject.toml reads it from here, the chart's appVersion and image tag name it too."""

__version__ = "0.1.0"
