"""HTTP endpoints: one module per area."""
