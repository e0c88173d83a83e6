"""Shunter routers: prompt encoder, router families, training and evaluation.

Serve-time modules (``base``, ``encoder``, ``decision`` and the family files' inference
classes) import only numpy, onnxruntime and tokenizers. Training dependencies are imported
inside the functions that need them.
"""
