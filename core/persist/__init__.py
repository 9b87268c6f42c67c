"""Persisted chat state and login checks, framework-free.

``service.py`` the Persistence switch from Settings and ``state.json``,
``recovery.py`` durable writes and resume checks, ``auth.py`` password hashes,
``locations.py`` the database URL and thread folders. The Chainlit data layer,
its storage and the login routes are the chat's (chat.persist).
"""
