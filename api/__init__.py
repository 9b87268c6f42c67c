"""The REST door on Chainlit's server: routes, older-client routes, the
OpenAI-compatible door, request parsing, formats, fetch. HTTP only."""
