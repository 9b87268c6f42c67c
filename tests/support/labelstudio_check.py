"""Read Label Studio tasks back with the Label Studio SDK (run in .venv-ls).

    .venv-ls/bin/python tests/support/labelstudio_check.py TASKS CONFIG OUT_DIR

Prints JSON: ``errors`` (per task, the SDK's ``LabelInterface.validate_prediction``
messages plus any label the config does not name) and ``coco`` (the tasks, their
predictions taken as reviewed annotations, converted by the SDK's COCO
converter). Uses only the SDK and the standard library: .venv-ls has no app code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from label_studio_sdk.converter import Converter
from label_studio_sdk.label_interface import LabelInterface


def main(tasks_path: str, config_path: str, out_dir: str) -> None:
    config = Path(config_path).read_text(encoding="utf-8")
    tasks = json.loads(Path(tasks_path).read_text(encoding="utf-8"))
    interface = LabelInterface(config)
    known = {
        name: set(interface.get_control(name).labels) for name in ("label", "polygon")
    }
    errors = []
    for task in tasks:
        (prediction,) = task["predictions"]
        found = interface.validate_prediction(prediction, return_errors=True)
        for region in prediction["result"]:
            kind = region["type"]
            for label in region["value"][kind]:
                if label not in known[region["from_name"]]:
                    found.append(f"label {label!r} is not in the config")
        errors.append(found)
    # Accepted in Label Studio, predictions become annotations; export them.
    reviewed = [
        {"id": number, "data": task["data"], "annotations": task["predictions"]}
        for number, task in enumerate(tasks, start=1)
    ]
    out = Path(out_dir)
    (out / "reviewed.json").write_text(json.dumps(reviewed), encoding="utf-8")
    converter = Converter(config, project_dir=str(out), download_resources=False)
    converter.convert_to_coco(
        str(out / "reviewed.json"), str(out / "coco"), is_dir=False
    )
    coco = json.loads((out / "coco" / "result.json").read_text(encoding="utf-8"))
    print(json.dumps({"errors": errors, "coco": coco}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
