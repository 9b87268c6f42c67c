"""Persisted chat history and login (the only part of core that imports chainlit).

``service.py`` wires it from Settings; ``auth.py`` password hashes and login,
``db.py`` the SQLAlchemy data layer, ``storage.py`` local element files.
"""
