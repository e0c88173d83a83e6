"""Shunter: an OpenAI-compatible gateway that routes each request to the right model."""

__version__ = "0.1.0"
