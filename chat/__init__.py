"""The Chainlit-side chat flow: replies, analysis steps, session state, services.

Imports chainlit; core never imports chat.
"""
