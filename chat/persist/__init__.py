"""The chat's history and login on Chainlit: the parts that import chainlit.

``db.py`` Chainlit's SQLAlchemy data layer, ``thread_guard.py`` its thread-id
check, ``storage.py`` element files on disk behind signed URLs, ``login.py``
the login routes, ``history.py`` builds them from core.persist's Persistence
switch. What is framework-free (state.json, recovery, password hashes, the
database URL and thread folders) stays in core.persist.
"""
