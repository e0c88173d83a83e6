"""Routing policies: the YAML schema, the loader with precise errors, the decision engine."""
