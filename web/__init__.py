"""HTTP plumbing shared by the doors on the one server: ASGI middlewares (body
limit, read deadlines, security headers, route guards, thread ids) and the
origin/host policy. chat.security installs them on Chainlit's app; the pure
checks they apply live in core.security. See docs/security.md.
"""
