"""Helpers the tests share: real processes (fake upstreams, gateways), ports, polling with a deadline.

Fixtures in ``tests/conftest.py`` are built on these; tests import helpers from here, never from
a conftest.
"""
