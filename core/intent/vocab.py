"""Vocabulary for ``core.intent.parse``: languages, plurals, task phrases. Pure data.

Everything a maintainer may want to extend (a new language, an irregular
plural, another way to say "segment") lives here, in one place.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _pairs(text: str) -> dict[str, str]:
    """ "people:person mice:mouse" -> {"people": "person", "mice": "mouse"}."""
    return dict(pair.split(":") for pair in text.split())


# PaliGemma 2 mix language codes (WebLI / XM3600 set plus a few common ones)
# -> names people type, English first, then native names and aliases.
LANGUAGES: dict[str, tuple[str, ...]] = {
    "en": ("english",),
    "de": ("german", "deutsch"),
    "fr": ("french", "français", "francais"),
    "es": ("spanish", "español", "espanol", "castilian"),
    "it": ("italian", "italiano"),
    "pt": ("portuguese", "português", "portugues", "brazilian"),
    "nl": ("dutch", "nederlands", "flemish"),
    "pl": ("polish", "polski"),
    "ru": ("russian", "русский"),
    "uk": ("ukrainian", "українська"),
    "tr": ("turkish", "türkçe", "turkce"),
    "ar": ("arabic", "العربية"),
    "he": ("hebrew", "עברית"),
    "fa": ("persian", "farsi", "فارسی"),
    "hi": ("hindi", "हिन्दी", "हिंदी"),
    "bn": ("bengali", "bangla", "বাংলা"),
    "te": ("telugu", "తెలుగు"),
    "zh": ("chinese", "mandarin", "中文", "汉语", "漢語"),
    "ja": ("japanese", "日本語"),
    "ko": ("korean", "한국어"),
    "vi": ("vietnamese", "tiếng việt", "tieng viet"),
    "th": ("thai", "ไทย"),
    "id": ("indonesian", "bahasa indonesia"),
    "ms": ("malay", "bahasa melayu"),
    "fil": ("filipino", "tagalog"),
    "sv": ("swedish", "svenska"),
    "da": ("danish", "dansk"),
    "no": ("norwegian", "norsk"),
    "fi": ("finnish", "suomi"),
    "cs": ("czech", "čeština", "cestina"),
    "el": ("greek", "ελληνικά"),
    "hu": ("hungarian", "magyar"),
    "ro": ("romanian", "română", "romana"),
    "hr": ("croatian", "hrvatski"),
    "sw": ("swahili", "kiswahili"),
    "mi": ("maori", "māori"),
    "quz": ("quechua",),
}
LANGUAGE_BY_NAME: dict[str, str] = {
    name: code for code, names in LANGUAGES.items() for name in names
}
# Codes that are also everyday English words: accepted right after
# "caption"/"describe"/"answer", never in "in <code>" phrases.
AMBIGUOUS_CODES = frozenset({"it", "no", "id", "he", "hi", "ms", "te", "mi", "fil"})
DEFAULT_LANGUAGE = "en"

# Plurals that are not "add an s".
IRREGULAR_PLURALS: dict[str, str] = _pairs(
    """
    people:person persons:person men:man women:woman children:child kids:kid
    mice:mouse geese:goose teeth:tooth feet:foot oxen:ox lice:louse knives:knife
    wives:wife lives:life leaves:leaf wolves:wolf halves:half shelves:shelf
    calves:calf loaves:loaf thieves:thief scarves:scarf elves:elf hooves:hoof
    buses:bus gases:gas cacti:cactus fungi:fungus potatoes:potato
    tomatoes:tomato heroes:hero mangoes:mango volcanoes:volcano echoes:echo
    dominoes:domino torpedoes:torpedo movies:movie cookies:cookie zombies:zombie
    selfies:selfie brownies:brownie smoothies:smoothie pies:pie ties:tie
    lies:lie bowties:bowtie axes:axe criteria:criterion phenomena:phenomenon
    """
)
# Words that look plural but are the name people use for one thing.
UNCHANGED_PLURALS = _words(
    """
    glasses sunglasses eyeglasses scissors pants trousers jeans shorts leggings
    tights pajamas pyjamas overalls goggles binoculars headphones earphones
    tongs pliers tweezers clothes stairs news series species sheep deer fish
    moose bison salmon shrimp aircraft chassis lens canvas atlas dice
    mathematics physics electronics headquarters means premises barracks
    """
)
_MEN_EXCEPTIONS = _words("specimen abdomen stamen omen semen")


def singularize(word: str) -> str:
    """One lowercase English noun to its singular; unknown shapes unchanged."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word in UNCHANGED_PLURALS or not word.isascii() or len(word) <= 3:
        return word
    if word.endswith("men") and word not in _MEN_EXCEPTIONS:
        return word[:-3] + "man"  # firemen, policemen, snowmen
    if word.endswith(("ss", "us", "is", "'s")):
        return word  # glass, cactus, tennis, possessives
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"  # cherries, puppies
    if word.endswith(("sses", "ches", "shes", "xes", "zzes")):
        return word[:-2]  # dresses, benches, dishes, boxes
    if word.endswith("s"):
        return word[:-1]
    return word


# Leading words dropped from object names ("all the dogs" -> "dog").
DETERMINERS = _words(
    """
    the a an all any some every each both of my your his her their its our these
    those this that many several few other one two three four five six seven
    eight nine ten
    """
)
# A target made only of these refers to the previous targets.
PRONOUNS = _words("it them they those these that this all both same") | {
    "all of them",
    "the same",
}
VAGUE_TARGETS = _words(
    "everything anything something object objects thing things stuff item items "
    "whatever"
)
# Modifiers that pick one of the previous objects: "only the left one".
POSITIONAL = _words(
    """
    left right top bottom front back middle center centre upper lower leftmost
    rightmost near nearest far farthest closest big bigger biggest small smaller
    smallest large larger largest first second last other
    """
)
# Words that cannot be part of an object name: their presence means a question.
NON_TARGET_WORDS = _words(
    """
    is are was were be been do does did i you we can could would should will
    what why how when who which taken made going happening doing sitting
    standing looking holding wearing from if
    """
)
FILLER_WORDS = _words(
    """
    hmm hm hmmm ok okay k yes no yeah yep nope thanks thank you thx cool nice
    great lol hi hello hey wow um uh huh what why sure fine good right oh ah so
    well test please and
    """
)
QUESTION_STARTERS = _words(
    """
    what whats what's how hows how's why who whom whose which when where is are
    was were do does did can could would should will has have had tell explain
    identify name list guess am
    """
)

# Phrases, as regex fragments, that start a request. Longest first.
_MASKS = r"(?:the\s+)?(?:masks?|segmentations?|outlines?|silhouettes?)"
SEGMENT_LEADS = (
    rf"(?:show|give|get|draw|make|create|generate|produce)(?:\s+me)?\s+(?:a\s+)?"
    rf"{_MASKS}\s+(?:of|for|on|around)|{_MASKS}\s+(?:of|for|on|around)|"
    r"draw\s+(?:an\s+)?outlines?\s+(?:of|around)|cut\s+out|segment(?:ation\s+of)?|"
    r"outline|mask|trace|isolate|separate|extract|cut"
)
_BOXES = r"(?:the\s+)?(?:bounding\s+)?(?:box(?:es)?|rectangles?)"
DETECT_LEADS = (
    rf"(?:show|give|get|draw|put|make|create)(?:\s+me)?\s+(?:a\s+)?{_BOXES}"
    rf"\s+(?:of|for|on|around)|{_BOXES}\s+(?:of|for|on|around)|show\s+me\s+where|"
    r"where(?:\s+is|\s+are|'s|s|'re|\s+re)|detect(?:ion\s+of)?|find(?:\s+me)?|locate|"
    r"look\s+for|search\s+for|point\s+(?:out|to)|show(?:\s+me)?|spot|highlight|mark|"
    r"count|box"
)
WHERE_LEAD = re.compile(r"^(?:show\s+me\s+)?where\b")

_BOX_WORDS = r"(?:bounding\s+)?(?:box(?:es)?|bboxes|rectangles|detections?)"
_MASK_WORDS = r"(?:masks?|segmentations?|segments|outlines?|silhouettes?|cut\s*outs?)"
_SWITCH = (
    r"^(?:(?:just|only|show(?:\s+me)?|draw|use|give\s+me|display|with|as|in|using|switch\s+to|"
    r"change\s+to|make\s+(?:it|them|those)|turn\s+(?:it|them)\s+into)\s+)*"
    r"(?:them\s+|it\s+)?(?:as\s+)?(?:the\s+)?(?P<kind>{b}|{m})"
    r"(?:\s+(?:instead|only|please|again|too|now))*$"
)
SWITCH = re.compile(_SWITCH.format(b=_BOX_WORDS, m=_MASK_WORDS))
BOX_WORD = re.compile(rf"^{_BOX_WORDS}$")

REPEAT = re.compile(
    r"^(?:(?:do|run|try|show)\s++(?:it|that|this)?\s*+again|again|repeat(?:\s+that)?|"
    r"(?:do\s+)?(?:the\s+)?same(?:\s+(?:thing|again|here|please|one))*|once\s+more|"
    r"one\s+more\s+time|retry|try\s+again|redo|re-?run|run\s+again)$"
)
UNDO = re.compile(
    r"^(?:undo|revert|go\s+back|step\s+back|back|take\s+(?:it|that)\s+back)"
    r"(?:\s+(?:that|it|please|the\s+last\s+(?:one|step|change)))*$"
)
# "export all", "download the masks", "save everything as coco": the downloads.
EXPORT = re.compile(r"^(?:please\s+)?(?:export|download|save)\b(?P<rest>.*)$")
EXPORT_ALL = re.compile(r"\b(?:all|every(?:thing|\s+image)?|each\s+image)\b")
HELP = re.compile(
    r"^(?:/?help(?:\s+me)?|what\s+can\s+(?:you|i)\s+(?:do|say|type|ask)|"
    r"how\s+does\s+(?:this|it)\s+work|commands|usage|instructions|examples?)$"
)
POLITE_PREFIX = re.compile(
    r"^(?:please|pls|kindly|now|then|ok|okay|so|hey|and\s+now|next|no(?=\s*,)|"
    r"(?:can|could|would|will)\s+you(?:\s+please)?|i\s+(?:want|need)(?:\s+you)?\s+to|"
    r"i(?:'d|\s+would)\s+like(?:\s+you)?\s+to|let'?s|try\s+to|go\s+ahead\s+and)\b[\s,]*"
)
# Suffixes are searched: a run before them is taken whole, from its first character.
POLITE_SUFFIX = re.compile(
    r"(?<![\s,])[\s,]*+\b(?:please|pls|thanks|thank\s+you|for\s+me|now)$"
)
IMAGE_PHRASE = re.compile(
    r"\b(?:(?:in|on|of|for|from|at|to|within)\s+)?(?:this|the|these|that)\s+"
    r"(?:image|picture|photo|pic|shot|scene|frame)s?\b"
)
ADD_PREFIX = re.compile(
    r"^(?:(?:and\s+)?also|and|plus|add|with|as\s+well\s+as|include|including)\b\s*"
)
# "what about the right wheel?", "how about the dog?": the same request for
# other targets (after a detect/segment request; otherwise a question)
INSTEAD_PREFIX = re.compile(r"^(?:and\s+)?(?:what|how)\s+about\b\s*")
ADD_SUFFIX = re.compile(r"(?<!\s)\s*+\b(?:too|as\s+well|also)$")
ONLY_PREFIX = re.compile(r"^(?:(?:keep|show|leave)\s+)?(?:only|just)\b\s*")
REMOVE_PREFIX = re.compile(
    r"^(?:remove|drop|delete|without|not|no|minus|except|exclude|forget|skip|"
    r"ignore|hide|leave\s+out|take\s+out|get\s+rid\s+of|but\s+not)\b\s*"
)
OCR = re.compile(
    r"^ocr\b|\bread\b|\btranscribe\b|\bwhat(?:'s|\s+is|s)\s+written\b|"
    r"\bwhat\s+(?:does|do)\s+(?:it|this|that|they|the\s+[\w' -]{1,30})\s+say\b|"
    r"\bwhat\s+(?:it|this|that|the\s+[\w' -]{1,30})\s+says\b|"
    r"\b(?:extract|get|copy|grab|pull)(?:\s+out)?\s+(?:the\s+|all\s+(?:the\s+)?)?"
    r"(?:text|writing|words)\b|\bwhat(?:'s|\s+is)\s+the\s+text\b|"
    r"\b(?:text|writing)\s+(?:in|on|from)\s+(?:the|this)\b"
)
DESCRIBE = re.compile(
    r"^describe(?:\s+(?:it|this|that|everything|what\s+you\s+see|"
    r"(?:this|the)\s+(?:image|picture|photo|scene)))?"
    r"(?:\s+(?:in\s+(?:more\s+|great\s+|full\s+)?detail|thoroughly|fully|at\s+length))?$|"
    r"\b(?:detailed|long|longer|full)\s+(?:description|caption)\b|"
    r"\bin\s+(?:more\s+|great\s+|full\s+)?detail\b|\bmore\s+details?\b"
)
CAPTION = re.compile(
    r"^(?:write\s+|give\s+me\s+|generate\s+|make\s+)?(?:a\s+|an\s+)?(?:short\s+)?"
    r"caption\b|\bcaption\b|^summari[sz]e\b|^what\s+(?:do|can)\s+you\s+see\b|"
    r"\bwhat(?:'s|\s+is|s)\s+(?:in|on)\s+(?:this|the)\s+(?:image|picture|photo|pic|scene)\b|"
    r"^what(?:'s|\s+is|s)\s+(?:this|that)(?:\s+(?:image|picture|photo|pic))?"
    r"(?:\s+(?:of|about|showing))?$|^what(?:'s|\s+is)\s+(?:happening|going\s+on)\b|"
    r"\btell\s+me\s+about\s+(?:this|the)\s+(?:image|picture|photo)\b"
)

# Image references: "on the first image", "image 2", "in all photos", "cat.jpg".
ORDINALS: dict[str, str] = _pairs(
    "first:1 second:2 third:3 fourth:4 fifth:5 sixth:6 seventh:7 eighth:8 ninth:9 "
    "tenth:10 last:last latest:last newest:last"
)
SELECT_VERBS = frozenset(
    "use|select|pick|choose|open|show|switch to|go to|change to|look at|focus on|"
    "work on".split("|")
)
_NOUN = r"(?:image|img|photo|picture|pic|shot|file|upload)s?"
_EXT = r"\.(?:jpe?g|png|webp|gif|bmp|tiff?|heic|heif|avif)"
_PREP = (
    r"(?<![\w.-])(?:(?P<prep>on|in|for|to|with|at|from|of|using|"
    + "|".join(v.replace(" ", r"\s+") for v in sorted(SELECT_VERBS))
    + r")\s+)?"
)
_ORD = "|".join(ORDINALS)
# A bare file name is at most 255 characters (NAME_MAX): the bound keeps its
# search linear on runs such as "a(a(a(" (each "(" may start a name).
IMAGE_REFS = (
    re.compile(
        rf"{_PREP}(?:the\s+)?(?P<ord>{_ORD}|\d+(?:st|nd|rd|th))\s+(?:one\s+)?{_NOUN}\b",
        re.I,
    ),
    re.compile(
        rf"{_PREP}(?:the\s+)?{_NOUN}\s*+(?:#|no\.?|number)?\s*+(?P<num>\d++)\b", re.I
    ),
    re.compile(
        rf"{_PREP}(?P<all>all|every|each|both)\s+(?:of\s+)?"
        rf"(?:the\s+|my\s+|these\s+|those\s+)?{_NOUN}\b",
        re.I,
    ),
    re.compile(
        rf"{_PREP}(?:\"(?P<q1>[^\"]+{_EXT})\"|'(?P<q2>[^']+{_EXT})'"
        rf"|(?P<bare>[\w()-][\w.()-]{{0,249}}{_EXT}))(?![\w.-])",
        re.I,
    ),
)
