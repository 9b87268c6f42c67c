"""Chat text -> Intent (the exact model prompt). Pure.

``parse.py`` decides what the user asked, ``text.py`` cleans and splits the
words, ``vocab.py`` holds the verbs, nouns and language names it knows.
"""

from core.intent.parse import HELP_MESSAGE, parse_intent

__all__ = ["HELP_MESSAGE", "parse_intent"]
