"""parse_intent: natural phrasings, raw prompts, refinements, clarifications."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from core.intent.language import supported_codes
from core.intent.parse import parse_intent
from core.intent.vocab import LANGUAGE_BY_NAME, LANGUAGES, singularize
from core.types import TASKS, Intent

# What a prompt sent to PaliGemma 2 mix may look like.
PROMPT_GRAMMAR = re.compile(
    r"(detect|segment) [^;]+( ; [^;]+)*|(caption|describe) [a-z]{2,3}|ocr"
    r"|(answer|question) [a-z]{2,3} .+"
)

# (text, action, prompt, image_ref)
SINGLE_TURN = [
    ("segment the left wheel", "run", "segment left wheel", None),  # article dropped
    ("detect dog ; bike", "run", "detect dog ; bike", None),  # raw list
    ("find the dogs and the bikes", "run", "detect dog ; bike", None),  # and-list
    (
        "where are the cars, people and bikes?",
        "run",
        "detect car ; person ; bike",
        None,
    ),  # where list
    ("Could you please outline the dog?", "run", "segment dog", None),  # polite outline
    ("cut out the person", "run", "segment person", None),  # cut out
    ("mask the sky", "run", "segment sky", None),  # mask verb
    ("give me masks of the cars", "run", "segment car", None),  # masks of
    ("I want to segment the cat", "run", "segment cat", None),  # i want to
    (
        "please find all the cars in this picture",
        "run",
        "detect car",
        None,
    ),  # image phrase
    ("show me the knives", "run", "detect knife", None),  # show me
    ("show me where the dog is", "run", "detect dog", None),  # show me where
    ("where's the cat?", "run", "detect cat", None),  # where's
    (
        "where is the cat sitting?",
        "run",
        "answer en where is the cat sitting?",
        None,
    ),  # where + verb
    (
        "where was this photo taken?",
        "run",
        "answer en where was this photo taken?",
        None,
    ),  # about photo
    ("locate the knives and forks", "run", "detect knife ; fork", None),  # locate
    ("draw boxes around the people", "run", "detect person", None),  # draw boxes
    ("box the bikes", "run", "detect bike", None),  # box verb
    ("highlight the traffic lights", "run", "detect traffic light", None),  # multiword
    ("count the sheep", "run", "detect sheep", None),  # count, sheep
    ("find 3 dogs", "run", "detect dog", None),  # numbers dropped
    (
        "find the bottles of wine",
        "run",
        "detect bottle of wine",
        None,
    ),  # head before of
    ("find the wine glasses", "run", "detect wine glasses", None),  # glasses kept
    ("detect the scissors", "run", "detect scissors", None),  # scissors kept
    (
        "find the mice, children and buses",
        "run",
        "detect mouse ; child ; bus",
        None,
    ),  # irregular
    (
        "find the puppies, the cherries and the boxes",
        "run",
        "detect puppy ; cherry ; box",
        None,
    ),  # ies xes
    ("find the horses and the houses", "run", "detect horse ; house", None),  # ses
    ("find the benches and dishes", "run", "detect bench ; dish", None),  # ches shes
    ("find the firemen and women", "run", "detect fireman ; woman", None),  # men
    ("find the toys and monkeys", "run", "detect toy ; monkey", None),  # ys
    ("find the tomatoes and shoes", "run", "detect tomato ; shoe", None),  # oes
    ("find the leaves and wolves", "run", "detect leaf ; wolf", None),  # ves
    (
        "find the dogs, cats, & birds",
        "run",
        "detect dog ; cat ; bird",
        None,
    ),  # ampersand
    ("find the cats or dogs", "run", "detect cat ; dog", None),  # or-list
    ("find the café tables", "run", "detect café table", None),  # unicode target
    (
        "\uff46\uff49\uff4e\uff44 \uff54\uff48\uff45 \uff44\uff4f\uff47\uff53",
        "run",
        "detect dog",
        None,
    ),  # fullwidth NFKC
    (
        "find   the dogs\u200b and cats",
        "run",
        "detect dog ; cat",
        None,
    ),  # zero-width space
    ("find\tthe\xa0dog", "run", "detect dog", None),  # tab and nbsp
    (
        "segment   the   LEFT   wheel  ",
        "run",
        "segment left wheel",
        None,
    ),  # spacing, case
    ("Detect   Cats!!", "run", "detect cat", None),  # punctuation
    ("detect cat", "run", "detect cat", None),  # raw single
    ("detect cats", "run", "detect cats", None),  # raw plural kept as typed
    ("segment a ; b", "run", "segment a ; b", None),  # raw placeholders
    ("detect dog;bike", "run", "detect dog ; bike", None),  # raw no spaces
    ("DETECT DOG ; BIKE", "run", "detect dog ; bike", None),  # raw upper case
    ("caption es", "run", "caption es", None),  # raw caption
    ("describe fr", "run", "describe fr", None),  # raw describe
    ("caption", "run", "caption en", None),  # bare caption
    ("describe", "run", "describe en", None),  # bare describe
    ("caption hi", "run", "caption hi", None),  # raw Hindi code
    ("ocr", "run", "ocr", None),  # raw ocr
    ("OCR", "run", "ocr", None),  # raw ocr upper
    ("answer en what is this?", "run", "answer en what is this?", None),  # raw answer
    ("answer de Was ist das?", "run", "answer de Was ist das?", None),  # raw keeps case
    ("question en a red car", "run", "question en a red car", None),  # raw question
    ("what's in this picture?", "run", "caption en", None),  # caption question
    ("what\u2019s in this picture?", "run", "caption en", None),  # curly apostrophe
    ("what do you see?", "run", "caption en", None),  # what do you see
    ("what is this?", "run", "caption en", None),  # what is this
    ("describe it", "run", "describe en", None),  # describe it
    ("describe in detail", "run", "describe en", None),  # in detail
    ("give me a detailed description", "run", "describe en", None),  # detailed
    ("caption this in German", "run", "caption de", None),  # in German
    ("German caption please", "run", "caption de", None),  # language first
    ("a short caption in spanish", "run", "caption es", None),  # short caption
    ("caption this in 日本語", "run", "caption ja", None),  # native name
    ("caption in zh", "run", "caption zh", None),  # code after in
    ("describe it in Portuguese", "run", "describe pt", None),  # describe + language
    ("read the text", "run", "ocr", None),  # read
    ("what does the sign say", "run", "ocr", None),  # what does x say
    ("show me what the sign says", "run", "ocr", None),  # says
    ("what is written on the sign?", "run", "ocr", None),  # written
    ("transcribe this", "run", "ocr", None),  # transcribe
    ("extract the text", "run", "ocr", None),  # extract text
    (
        "how many dogs are there?",
        "run",
        "answer en how many dogs are there?",
        None,
    ),  # question
    (
        "what color is the car?",
        "run",
        "answer en what color is the car?",
        None,
    ),  # color
    ("is the door open", "run", "answer en is the door open", None),  # no ?
    (
        "who is the man on the left?",
        "run",
        "answer en who is the man on the left?",
        None,
    ),  # who
    (
        "tell me what the man is holding",
        "run",
        "answer en tell me what the man is holding",
        None,
    ),  # tell
    ("can you see a dog?", "run", "answer en can you see a dog?", None),  # can you
    (
        "describe the dog",
        "run",
        "answer en describe the dog",
        None,
    ),  # object description
    (
        "describe the dog in French",
        "run",
        "answer fr describe the dog",
        None,
    ),  # in French
    (
        "how old is the child? answer in Italian",
        "run",
        "answer it how old is the child?",
        None,
    ),  # it
    (
        "how many dogs are on image 2?",
        "run",
        "answer en how many dogs are on the image?",
        "2",
    ),  # ref
    ("¿qué es esto?", "run", "answer es ¿qué es esto?", None),  # Spanish question
    ("segment the cat on image 2", "run", "segment cat", "2"),  # image number
    ("detect cat on the second photo", "run", "detect cat", "2"),  # ordinal
    ("segment the cat in photo.JPG", "run", "segment cat", "photo.JPG"),  # file name
    ("detect the dogs in all images", "run", "detect dog", "all"),  # batch
    ("find the dog in every picture", "run", "detect dog", "all"),  # every picture
    ("caption es on image 2", "run", "caption es", "2"),  # raw + ref
    ("show the second image", "select", "", "2"),  # select verb
    ("switch to image 1", "select", "", "1"),  # switch to
    ("on the last photo", "select", "", "last"),  # ref, no previous
    ("on IMG_0042.jpeg", "select", "", "IMG_0042.jpeg"),  # file, no previous
    ("use 'my cat.png'", "select", "", "my cat.png"),  # quoted file name
    ("", "clarify", "", None),  # empty
    ("   ", "clarify", "", None),  # spaces only
    ("hmm", "clarify", "", None),  # filler
    ("?", "clarify", "", None),  # question mark only
    ("...", "clarify", "", None),  # dots
    ("ok thanks", "clarify", "", None),  # thanks
    ("hello", "clarify", "", None),  # greeting
    ("red car", "clarify", "", None),  # bare noun phrase
    ("detect everything", "run", "caption en", None),  # caption, then its names
    ("segment all objects", "run", "caption en", None),  # same, as masks
    ("detect anything", "clarify", "", None),  # vague target
    ("find the 🐶", "clarify", "", None),  # emoji only
    ("segment", "clarify", "", None),  # verb without target
    ("detect them", "clarify", "", None),  # pronoun, no previous
    ("also the bike", "clarify", "", None),  # add, no previous
    ("only the left one", "clarify", "", None),  # only, no previous
    ("remove the bike", "clarify", "", None),  # remove, no previous
    ("now as boxes", "clarify", "", None),  # switch, no previous
    ("again", "clarify", "", None),  # repeat, no previous
    ("in Spanish", "clarify", "", None),  # language, no previous
    ("help", "help", "", None),  # help
    ("what can you do?", "help", "", None),  # help question
    ("/help", "help", "", None),  # slash help
    ("undo", "undo", "", None),  # undo
    ("undo that", "undo", "", None),  # undo that
    ("go back", "undo", "", None),  # go back
    ("export", "export", "", None),  # downloads of the current result
    ("download the masks", "export", "", None),  # download wording
    ("export all", "export", "", "all"),  # every analysed image
    ("Download everything!", "export", "", "all"),  # everything, punctuation
    ("detect the export sign", "run", "detect export sign", None),  # a noun
]


@pytest.mark.parametrize(("text", "action", "prompt", "image_ref"), SINGLE_TURN)
def test_single_turn(
    text: str, action: str, prompt: str, image_ref: str | None
) -> None:
    intent = parse_intent(text)
    assert (intent.action, intent.prompt, intent.image_ref) == (
        action,
        prompt,
        image_ref,
    )
    assert intent.task in TASKS
    assert not intent.follows_previous
    if action == "run":
        assert PROMPT_GRAMMAR.fullmatch(intent.prompt), intent.prompt
        assert intent.message is None
    if action in ("clarify", "help"):
        assert intent.message and len(intent.message) > 20


def test_table_has_no_duplicate_rows() -> None:
    assert len({row[0] for row in SINGLE_TURN}) == len(SINGLE_TURN)


# Referring expressions reach the model unchanged after the verb, less the article.
# (text, prompt); an empty prompt means "clarify".
REFERRING = [
    (
        "segment the person holding an umbrella",
        "segment person holding an umbrella",
    ),  # participle
    (
        "segment the second car from the left",
        "segment second car from the left",
    ),  # ordinal + from
    ("find the man who is running", "detect man who is running"),  # relative who
    (
        "mask the child sitting next to the dog",
        "segment child sitting next to the dog",
    ),  # next to
    (
        "can you outline the woman wearing a red hat?",
        "segment woman wearing a red hat",
    ),  # polite question
    (
        "could you please segment the dog that is sleeping?",
        "segment dog that is sleeping",
    ),  # relative that
    ("detect the cup on the table", "detect cup on the table"),  # on
    ("segment the car on the right", "segment car on the right"),  # right
    (
        "find the third bottle from the right",
        "detect third bottle from the right",
    ),  # ordinal right
    ("segment the leftmost person", "segment leftmost person"),  # superlative
    ("outline the bird in the tree", "segment bird in the tree"),  # in
    ("cut out the man with the red shirt", "segment man with the red shirt"),  # with
    ("detect the dog behind the fence", "detect dog behind the fence"),  # behind
    ("segment the cat under the table", "segment cat under the table"),  # under
    ("find the lamp above the sofa", "detect lamp above the sofa"),  # above
    ("mask the book below the lamp", "segment book below the lamp"),  # below
    (
        "segment the woman between the car and the tree",
        "segment woman between the car and the tree",
    ),  # between keeps and
    ("detect the boy riding a bike", "detect boy riding a bike"),  # riding
    (
        "segment the girl playing with the ball",
        "segment girl playing with the ball",
    ),  # playing with
    (
        "find the car parked near the house",
        "detect car parked near the house",
    ),  # parked near
    (
        "locate the person standing at the door",
        "detect person standing at the door",
    ),  # standing at
    ("highlight the sign that says stop", "detect sign that says stop"),  # says stop
    (
        "segment the plate which has a cake on it",
        "segment plate which has a cake on it",
    ),  # which has
    (
        "segment the tallest building in the background",
        "segment tallest building in the background",
    ),  # background
    ("find the dog whose tail is up", "detect dog whose tail is up"),  # whose
    (
        "segment the man holding the cup and the dog",
        "segment man holding the cup ; dog",
    ),  # expression + name
    (
        "detect the cat on the left and the dog on the right",
        "detect cat on the left ; dog on the right",
    ),  # two expressions
    (
        "segment the person on the left; the bike",
        "segment person on the left ; bike",
    ),  # semicolon
    ("find the cars on the left", "detect cars on the left"),  # plural kept
    (
        "segment the two people sitting on the bench",
        "segment two people sitting on the bench",
    ),  # number kept
    (
        "please mask the white dog lying on the grass",
        "segment white dog lying on the grass",
    ),  # please
    (
        "I want to segment the girl in the blue dress",
        "segment girl in the blue dress",
    ),  # i want to
    (
        "would you outline the man wearing glasses?",
        "segment man wearing glasses",
    ),  # wearing no article
    (
        "can you find the chair closest to the window?",
        "detect chair closest to the window",
    ),  # closest to
    (
        "show me the bottle to the left of the glass",
        "detect bottle to the left of the glass",
    ),  # to the left of
    (
        "draw a box around the car that is parked",
        "detect car that is parked",
    ),  # box around + relative
    (
        "give me a mask of the horse pulling the cart",
        "segment horse pulling the cart",
    ),  # mask of
    ("segment the bowl with noodles", "segment bowl with noodles"),  # with plural
    ("detect the first person in line", "detect first person in line"),  # first in line
    ("segment the last car of the train", "segment last car of the train"),  # last of
    ("segment the man running", "segment man running"),  # bare participle
    ("segment the cat sitting", "segment cat sitting"),  # participle at the end
    (
        "find the small old rusty red vintage pickup truck",
        "detect small old rusty red vintage pickup truck",
    ),  # seven words, no modifier
    (
        "find the woman who is holding a baby",
        "detect woman who is holding a baby",
    ),  # who is holding
    ("segment the dog in the photo", "segment dog"),  # image phrase is not a modifier
    (
        "Segment The Person Holding An Umbrella!",
        "segment person holding an umbrella",
    ),  # case, punctuation
    ("segment all objects on the left", ""),  # vague
    ("segment what is on the table", ""),  # a question after the verb
    ("can you outline the", ""),  # article only: no target
]


@pytest.mark.parametrize(("text", "prompt"), REFERRING)
def test_referring_expressions(text: str, prompt: str) -> None:
    intent = parse_intent(text)
    assert (intent.action, intent.prompt) == ("run" if prompt else "clarify", prompt)
    if not prompt:
        assert intent.message and len(intent.message) > 20


# Questions in other languages are asked in that language (py3langid decides).
LANGUAGE_QUESTIONS = [
    (
        "¿cuántos perros hay en la foto?",
        "answer es ¿cuántos perros hay en la foto?",
    ),  # Spanish
    ("¿De qué color es el coche?", "answer es ¿De qué color es el coche?"),  # Spanish 2
    ("Was ist auf dem Bild?", "answer de Was ist auf dem Bild?"),  # German
    (
        "Wie viele Hunde sind auf dem Foto?",
        "answer de Wie viele Hunde sind auf dem Foto?",
    ),  # German 2
    ("Combien de chats y a-t-il ?", "answer fr Combien de chats y a-t-il?"),  # French
    (
        "De quelle couleur est la voiture ?",
        "answer fr De quelle couleur est la voiture?",
    ),  # French 2
    (
        "Di che colore è la macchina?",
        "answer it Di che colore è la macchina?",
    ),  # Italian
    ("Quantos cães há na foto?", "answer pt Quantos cães há na foto?"),  # Portuguese
    ("Hoeveel honden zijn er?", "answer nl Hoeveel honden zijn er?"),  # Dutch
    ("Ile psów jest na zdjęciu?", "answer pl Ile psów jest na zdjęciu?"),  # Polish
    ("Скільки собак на фото?", "answer uk Скільки собак на фото?"),  # Ukrainian
    (
        "Что находится на этой картинке?",
        "answer ru Что находится на этой картинке?",
    ),  # Russian
    ("Fotoğrafta kaç köpek var?", "answer tr Fotoğrafta kaç köpek var?"),  # Turkish
    (
        "كم عدد الكلاب في الصورة؟",
        "answer ar كم عدد الكلاب في الصورة؟",
    ),  # Arabic question mark kept
    ("כמה כלבים יש בתמונה?", "answer he כמה כלבים יש בתמונה?"),  # Hebrew
    ("तस्वीर में कितने कुत्ते हैं?", "answer hi तस्वीर में कितने कुत्ते हैं?"),  # Hindi
    ("照片里有几只狗\uff1f", "answer zh 照片里有几只狗?"),  # Chinese, NFKC ?
    ("写真に犬は何匹いますか\uff1f", "answer ja 写真に犬は何匹いますか?"),  # Japanese
    ("사진에 개가 몇 마리 있나요?", "answer ko 사진에 개가 몇 마리 있나요?"),  # Korean
    (
        "Có bao nhiêu con chó trong ảnh?",
        "answer vi Có bao nhiêu con chó trong ảnh?",
    ),  # Vietnamese
    ("ในภาพมีสุนัขกี่ตัว", "answer th ในภาพมีสุนัขกี่ตัว"),  # Thai, no question mark
    (
        "Hur många hundar finns på bilden?",
        "answer sv Hur många hundar finns på bilden?",
    ),  # Swedish
    ("Montako koiraa kuvassa on?", "answer fi Montako koiraa kuvassa on?"),  # Finnish
    (
        "Πόσα σκυλιά υπάρχουν στη φωτογραφία;",
        "answer el Πόσα σκυλιά υπάρχουν στη φωτογραφία;",
    ),  # Greek
    ("Hány kutya van a képen?", "answer hu Hány kutya van a képen?"),  # Hungarian
    (
        "Kuna mbwa wangapi kwenye picha?",
        "answer sw Kuna mbwa wangapi kwenye picha?",
    ),  # Swahili
    (
        "Beschreibe das Bild bitte ausführlich",
        "answer de Beschreibe das Bild bitte ausführlich",
    ),  # German, no ?
    ("¿qué ves? answer in English", "answer en ¿qué ves?"),  # explicit language wins
    (
        "Was ist das? auf Französisch",
        "answer de Was ist das? auf Französisch",
    ),  # unknown name: detected
    ("who is he?", "answer en who is he?"),  # short English
    ("sí?", "answer en sí?"),  # too short to tell: English
    ("is the door open", "answer en is the door open"),  # English stays English
    (
        "what is the woman wearing on her head?",
        "answer en what is the woman wearing on her head?",
    ),  # English
]


@pytest.mark.parametrize(("text", "prompt"), LANGUAGE_QUESTIONS)
def test_questions_are_asked_in_their_language(text: str, prompt: str) -> None:
    intent = parse_intent(text)
    assert (intent.action, intent.prompt) == ("run", prompt)
    assert intent.language == prompt.split()[1]


def test_tables_cover_the_issue() -> None:
    assert len(REFERRING) >= 40
    languages = {prompt.split()[1] for _, prompt in LANGUAGE_QUESTIONS}
    non_english = [row for row in LANGUAGE_QUESTIONS if row[1].split()[1] != "en"]
    assert len(non_english) >= 20 and len(languages - {"en"}) >= 10


def test_identifier_knows_every_paligemma_language_but_maori() -> None:
    assert set(LANGUAGES) - set(supported_codes()) == {"mi"}


def test_language_model_loads_lazily() -> None:
    code = (
        "import sys, core.intent; from core.intent import parse_intent; "
        "parse_intent('detect dog'); print('py3langid' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("text", "task", "targets", "language"),
    [
        ("find the dogs and the bikes", "detect", ("dog", "bike"), "en"),  # grounded
        ("segment the left wheel", "segment", ("left wheel",), "en"),  # one target
        ("caption this in German", "caption", (), "de"),  # caption language
        ("how many dogs are there?", "answer", (), "en"),  # question
        ("answer fr qu'est-ce que c'est ?", "answer", (), "fr"),  # raw answer
        ("ocr", "ocr", (), "en"),  # ocr
    ],
)
def test_fields(text: str, task: str, targets: tuple[str, ...], language: str) -> None:
    intent = parse_intent(text)
    assert (intent.task, intent.targets, intent.language) == (task, targets, language)


@pytest.mark.parametrize(
    ("word", "singular"),
    [
        ("dogs", "dog"),  # regular
        ("people", "person"),  # irregular
        ("mice", "mouse"),  # irregular
        ("children", "child"),  # irregular
        ("knives", "knife"),  # ves
        ("buses", "bus"),  # bus
        ("glasses", "glasses"),  # kept
        ("scissors", "scissors"),  # kept
        ("glass", "glass"),  # ss
        ("cactus", "cactus"),  # us
        ("cherries", "cherry"),  # ies
        ("movies", "movie"),  # ies exception
        ("boxes", "box"),  # xes
        ("horses", "horse"),  # ses
        ("dresses", "dress"),  # sses
        ("policemen", "policeman"),  # men
        ("specimen", "specimen"),  # men exception
        ("bus", "bus"),  # short
        ("café", "café"),  # non-ascii untouched
    ],
)
def test_singularize(word: str, singular: str) -> None:
    assert singularize(word) == singular


def test_language_table_covers_thirty_languages() -> None:
    assert len(LANGUAGES) >= 30
    for name, code in LANGUAGE_BY_NAME.items():
        if not name.isascii() or " " in name:
            continue
        assert parse_intent(f"caption in {name}").prompt == f"caption {code}", name


# Multi-turn: each step is (text, action, prompt or None, image_ref, refinement);
# the previous intent is the last one that ran.
SEQUENCES = {
    "add, only, switch": [
        ("segment the cat", "run", "segment cat", None, None),
        ("also the dog", "run", "segment cat ; dog", None, "add"),
        ("only the left one", "clarify", "", None, None),  # left cat or left dog?
        ("just the dog", "run", "segment dog", None, "only"),
        ("only the left one", "run", "segment left dog", None, "only"),
        ("now as boxes", "run", "detect left dog", None, "switch"),
        ("masks instead", "run", "segment left dog", None, "switch"),
        ("undo", "undo", "", None, None),
    ],
    "add and remove": [
        ("detect dog ; bike", "run", "detect dog ; bike", None, None),
        ("and the car too", "run", "detect dog ; bike ; car", None, "add"),
        ("the bus as well", "run", "detect dog ; bike ; car ; bus", None, "add"),
        ("remove the bike", "run", "detect dog ; car ; bus", None, "remove"),
        ("without the car", "run", "detect dog ; bus", None, "remove"),
        ("remove the cat", "clarify", "", None, None),  # not in the request
        ("not the bus", "run", "detect dog", None, "remove"),
        ("hide the dog", "clarify", "", None, None),  # would leave nothing
        ("plus a truck", "run", "detect dog ; truck", None, "add"),
    ],
    "images": [
        ("segment the wheels", "run", "segment wheel", None, None),
        ("only the front one", "run", "segment front wheel", None, "only"),
        ("again", "run", "segment front wheel", None, "repeat"),
        ("same for the second photo", "run", "segment front wheel", "2", "repeat"),
        ("on the first image", "run", "segment front wheel", "1", "repeat"),
        ("in all images", "run", "segment front wheel", "all", "repeat"),
        ("on cat.jpg", "run", "segment front wheel", "cat.jpg", "repeat"),
        ("box them on photo 3", "run", "detect front wheel", "3", "switch"),
        ("use image 2", "select", "", "2", None),
    ],
    "pronouns and bare verbs": [
        ("detect the cars", "run", "detect car", None, None),
        ("only the red ones", "run", "detect red car", None, "only"),
        ("only the biggest", "run", "detect biggest car", None, "only"),
        ("segment them", "run", "segment biggest car", None, "switch"),
        ("detect", "run", "detect biggest car", None, "switch"),
        ("show them as boxes", "run", "detect biggest car", None, "switch"),
        ("also segment the trees", "run", "segment biggest car ; tree", None, "add"),
        (
            "also how many cars are there?",
            "run",
            "answer en how many cars are there?",
            None,
            None,
        ),
        ("the red car", "clarify", "", None, None),
        ("no, segment the dog", "run", "segment dog", None, None),
    ],
    "languages": [
        ("caption", "run", "caption en", None, None),
        ("in Spanish", "run", "caption es", None, "language"),
        ("describe it", "run", "describe en", None, None),
        ("now in french", "run", "describe fr", None, "language"),
        (
            "what color is the car?",
            "run",
            "answer en what color is the car?",
            None,
            None,
        ),
        ("in German", "run", "answer de what color is the car?", None, "language"),
        (
            "again in Korean",
            "run",
            "answer ko what color is the car?",
            None,
            "language",
        ),
        ("detect the car", "run", "detect car", None, None),
        ("in Spanish", "clarify", "", None, None),  # labels are English only
        ("ocr", "run", "ocr", None, None),
        ("translate it to german", "clarify", "", None, None),
    ],
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_multi_turn(name: str) -> None:
    previous: Intent | None = None
    for text, action, prompt, image_ref, refinement in SEQUENCES[name]:
        intent = parse_intent(text, previous)
        got = (intent.action, intent.prompt, intent.image_ref, intent.refinement)
        assert got == (action, prompt, image_ref, refinement), text
        assert intent.follows_previous == (refinement is not None), text
        if intent.action == "run":
            assert PROMPT_GRAMMAR.fullmatch(intent.prompt), intent.prompt
            previous = intent


def test_clarify_on_ambiguous_only_names_both_options() -> None:
    previous = parse_intent("segment the cat ; dog")
    intent = parse_intent("only the left one", previous)
    assert intent.action == "clarify"
    assert "left cat" in intent.message and "left dog" in intent.message


def test_previous_that_did_not_run_is_ignored() -> None:
    not_run = Intent(task="free", prompt="", action="clarify", message="x")
    assert parse_intent("also the bike", not_run).action == "clarify"


def test_parse_is_pure() -> None:
    previous = parse_intent("detect dog ; bike")
    first = parse_intent("remove the bike", previous)
    second = parse_intent("remove the bike", previous)
    assert first == second
    assert previous.prompt == "detect dog ; bike"


def test_help_names_how_to_attach_and_export():
    message = parse_intent("help").message
    assert "Attach a photo" in message
    assert "*export*" in message
