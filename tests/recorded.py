"""Recorded PaliGemma 2 outputs and replay recordings shared by the tests."""

from __future__ import annotations

# Recorded PaliGemma outputs (see issue 3).
SHOE_DETECT = "<loc0051><loc0309><loc0708><loc0646> shoe"
WHEELS_SEGMENT = (
    "<loc0591><loc0157><loc0794><loc0311> <seg092><seg004><seg044><seg092><seg120>"
    "<seg061><seg029><seg120><seg090><seg023><seg021><seg090><seg015><seg041>"
    "<seg044><seg073> right wheel ; <loc0586><loc0728><loc0794><loc0882> <seg092>"
    "<seg004><seg089><seg092><seg120><seg048><seg054><seg038><seg119><seg029>"
    "<seg021><seg090><seg095><seg041><seg044><seg073> right wheel"
)
WHEELS_BOXES_PX = [(98, 277, 194, 372), (455, 275, 551, 372)]  # 640x480 image

# Answers for the replay model (MODEL_ID=replay:<json>) in end-to-end tests.
REPLAY_SEGS = "".join(
    f"<seg{v:03d}>"
    for v in (5, 17, 99, 3, 64, 64, 12, 8, 101, 90, 33, 7, 0, 127, 45, 60)
)
REPLAY_CAT = f"<loc0100><loc0100><loc0700><loc0500> {REPLAY_SEGS} cat"
REPLAY_DOG = f"<loc0200><loc0550><loc0900><loc0950> {REPLAY_SEGS} dog"
REPLAY_RECORDING = {
    "segment cat": REPLAY_CAT,
    "segment cat ; dog": f"{REPLAY_CAT} ; {REPLAY_DOG}",
    "detect cat ; dog": "<loc0100><loc0100><loc0700><loc0500> cat ; "
    "<loc0200><loc0550><loc0900><loc0950> dog",
    "detect cat": "<loc0100><loc0100><loc0700><loc0500> cat",
    "detect car": "<loc0300><loc0100><loc0800><loc0900> car",
    "segment car": f"<loc0300><loc0100><loc0800><loc0900> {REPLAY_SEGS} car",
}

# Answers for the REST API and CLI end-to-end tests (replay model): every
# grounded prompt those tests send, with seg tokens where the task segments,
# so masks, COCO annotations, YOLO polygons and areas really exist.
REPLAY_CAR = f"<loc0300><loc0100><loc0800><loc0900> {REPLAY_SEGS} car"
REPLAY_BIKE = "<loc0400><loc0050><loc0950><loc0600> bike"
CAPTION_EN = "a cat and a dog on a grey floor"
API_RECORDING = {
    **REPLAY_RECORDING,
    "detect dog ; bike": "<loc0200><loc0550><loc0900><loc0950> dog ; " + REPLAY_BIKE,
    "segment car": f"{REPLAY_CAR} ; <loc0050><loc0600><loc0400><loc1000> "
    f"{REPLAY_SEGS} car",
    "caption en": CAPTION_EN,
    "answer ar \u0645\u0627 \u0644\u0648\u0646 X": "\u0623\u062d\u0645\u0631",
}
