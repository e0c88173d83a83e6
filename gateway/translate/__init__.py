"""Wire-format translation between the OpenAI chat format and the other client/upstream formats.

Pure functions and small stream state machines, no I/O: ``responses`` (OpenAI Responses API),
``anthropic`` (Anthropic Messages, both directions), ``sse`` (event framing and parsing).
The internal request is always an OpenAI chat-completions body; docs/clients.md has the tables.
"""
