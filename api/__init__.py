"""The REST API on Chainlit's server: routes, request parsing, formats, fetch."""
