"""Security checks shared by the chat and the REST API (no chainlit imports)."""
