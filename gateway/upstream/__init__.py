"""Upstream calls: pooled clients, retries before the first byte, fallback, SSE passthrough."""
