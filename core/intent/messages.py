"""What the chat says when it needs more from the user: help and clarifications."""

from __future__ import annotations

HELP_MESSAGE = (
    "Attach a photo (📎 or drag and drop), then tell me what to do:\n"
    "- **detect dog ; bike** or *find the cars and people*: boxes\n"
    "- **segment the left wheel** or *cut out the cat*: masks\n"
    "- *caption in German*, *describe in detail*, *read the text*\n"
    "- *detect everything* (a caption, then boxes on what it names), "
    "*describe each object* (a caption per box)\n"
    "- any question, in any language, e.g. *how many dogs are there?*\n"
    "- *segment the dog in image 1 and the cat in image 2*\n"
    "Then refine: *also the bike*, *only the left one*, *remove the dog*, "
    "*now as boxes*, *masks instead*, *in Spanish*, *on image 2*, "
    "*in all images*, *again*, *undo*; *only 1 and 3*, *remove 2*, "
    "*hide the boxes* redraw by the numbers in the table. *export* (or "
    "*export all*) gives the masks, COCO, YOLO and Label Studio files; the "
    "buttons under an answer give one each."
)
MSG_UNCLEAR = (
    "Tell me what to look for, e.g. “detect dog ; bike”, “segment the cat”, "
    "“caption in German”, “read the text”, or ask “how many dogs are there?”. "
    "Type “help” for more."
)
MSG_NO_PREVIOUS = (
    "There is nothing to refine yet. Start with e.g. “detect dog” or "
    "“segment the cat”, then say “also the bike” or “now as boxes”."
)
MSG_VAGUE = (
    "PaliGemma needs the names of things, e.g. “detect person ; car ; dog”. "
    "For everything in the photo say “detect everything”."
)
MSG_REGION_WHAT = (
    "What should I look for there? E.g. “zoom into the top left and detect "
    "bottles” or “region 100,200 to 600,700: segment the cat”."
)
MSG_NOTHING_LEFT = (
    "That would leave nothing to look for. Name something else, "
    "e.g. “detect dog”, or say “undo”."
)
MSG_ADD_WHAT = (
    "Also what? Name what to add, e.g. “also the bike”, or say “again” to "
    "run the last request once more."
)
MSG_ANSWER_WHAT = (
    "What should I answer? Ask a question about the photo, e.g. “how many "
    "dogs are there?” (in any language), then “in German” to ask it again."
)
MSG_REGION_EMPTY = (
    "That region has no area: its two corners need different x and different "
    "y values, e.g. “region 100,200 to 600,700: segment the cat”."
)
