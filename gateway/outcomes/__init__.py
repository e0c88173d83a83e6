"""Outcome records: one per request, written off the request path."""
