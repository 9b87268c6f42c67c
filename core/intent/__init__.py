"""Chat text -> Intent (the exact model prompt). Pure.

``parse.py`` decides what the user asked, ``text.py`` cleans and splits the
words, ``vocab.py`` holds the verbs, nouns and language names it knows.
``refer.py`` keeps referring expressions ("the man holding a cup") whole,
``language.py`` tells which language a question is in (py3langid),
``objects.py`` reads redraws by number ("only 1 and 3", "hide the boxes"),
``requests.py`` splits a message that names several images.
"""

from core.intent.parse import HELP_MESSAGE, parse_intent
from core.intent.requests import parse_requests

__all__ = ["HELP_MESSAGE", "parse_intent", "parse_requests"]
