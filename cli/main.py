"""Command line: one prompt over a folder of images (and clips: one result
per clip, objects tracked across frames), exports written to a folder.

    python -m cli "segment the cars" photos/ --out results/
    python -m cli "detect dog ; bike" a.jpg b.png --out out/ --format coco
    python -m cli "track the cars" clips/ --out tracks/

Settings come from the environment (MODEL_ID, VAE_PATH, DEVICE, ... as for the
app); ``--model`` / ``--vae`` / ``--device`` override them. Exit status: 0 when
at least one image succeeded, 1 when none did (or the model did not load),
2 on usage errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli.clips import run_clips, split_clips
from core.batch import BatchItem, batch_item_to_dict, batch_item_to_export_item
from core.config import Settings
from core.errors import AppError, UserInputError
from core.export import ExportItem, export_stems
from core.export.formats import FORMAT_NAMES, ExportOptions, export_bytes, get_format
from core.service import Services, parse_tiles, to_request
from core.service.many import iter_items
from core.types import DECODING_PRESETS, Decoding, Intent
from core.video import VIDEO_SUFFIXES, video_request

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
FORMATS = (*FORMAT_NAMES, "json", "all")  # exports, results.json, or every one
RESULTS_NAME = "results.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cli",
        description="Run one PaliGemma request over many images and export the "
        "results (COCO, YOLO-seg, mask PNGs, JSON, overlays).",
    )
    parser.add_argument("prompt", help='what to do, as in the chat: "segment cars"')
    parser.add_argument(
        "inputs", nargs="+", metavar="FOLDER_OR_FILE", help="image files or folders"
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--format", choices=FORMATS, default="all")
    parser.add_argument(
        "--decoding", choices=sorted(DECODING_PRESETS), default="greedy"
    )
    parser.add_argument("--max-new-tokens", type=int, default=None, metavar="N")
    parser.add_argument(
        "--tiles",
        default="off",
        metavar="auto|off|NxM",
        help="detect/segment also on overlapping tiles (small objects in big photos)",
    )
    parser.add_argument("--no-overlay", action="store_true", help="no overlay PNGs")
    parser.add_argument("--opacity", type=float, default=0.5, help="mask opacity")
    parser.add_argument(
        "--polygons", action="store_true", help="COCO masks as polygons, not RLE"
    )
    parser.add_argument("--recursive", action="store_true", help="walk subfolders")
    parser.add_argument("--model", help="MODEL_ID override: hub id or local folder")
    parser.add_argument("--vae", help="VAE_PATH override: path to vae-oid.npz")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO")
    return parser


def find_images(inputs: Sequence[str], recursive: bool) -> list[tuple[str, Path]]:
    """``(name, path)`` of every image to process, in order.

    A folder contributes its files with an image or clip extension
    (case-insensitive; clips are tracked: cli.clips),
    sorted by relative path, named by that path; a file given explicitly is
    always taken (its bytes decide whether it is an image), named by its file
    name. Raises FileNotFoundError for a path that does not exist.
    """
    found: list[tuple[str, Path]] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = [
                p
                for p in path.glob(pattern)
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_SUFFIXES
            ]
            named = [(p.relative_to(path).as_posix(), p) for p in files]
            found.extend(sorted(named))
        elif path.is_file():
            found.append((path.name, path))
        else:
            raise FileNotFoundError(f"no such file or folder: {text}")
    return found


def _make_progress(total: int):
    """A tqdm bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="image", file=sys.stderr, disable=None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        overrides = dict(model_id=args.model, vae_path=args.vae, device=args.device)
        settings = dataclasses.replace(
            settings, **{k: v for k, v in overrides.items() if v is not None}
        )
        decoding = Decoding(args.decoding, args.max_new_tokens)
        if not 0.0 <= args.opacity <= 1.0:
            raise ValueError(f"--opacity must be in [0, 1], got {args.opacity}")
        args.tiles = parse_tiles(args.tiles)
        sources, clips = split_clips(find_images(args.inputs, args.recursive))
        # before the (slow) model load: photos take the prompt, clips track it
        intent = to_request(args.prompt) if sources or not clips else None
        clip_intent = video_request(args.prompt) if clips else None
    except UserInputError as exc:
        if "tiles" in exc.message:
            parser.error(exc.message)
        parser.error(f"the prompt does not ask the model to run: {exc.message}")
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))  # exits 2
    if not sources and not clips:
        parser.error(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found")

    from logging_config import setup_logging

    setup_logging("INFO" if args.verbose else "WARNING")
    return run(args, settings, intent, decoding, sources, (clip_intent, clips))


def run(
    args: argparse.Namespace,
    settings: Settings,
    intent: Intent,
    decoding: Decoding,
    sources: list[tuple[str, Path]],
    clips: tuple[Intent | None, list[tuple[str, Path]]] = (None, []),
) -> int:
    """Load the model once, run the batch and the clips (``(intent, clips)``),
    write the exports; the exit status."""
    loaded = _load(settings)
    if loaded is None:
        return 1
    services, manager = loaded

    overlays = not args.no_overlay
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    clip_intent, clip_sources = clips
    if clip_intent is not None:
        done, failed = run_clips(
            services,
            manager,
            clip_intent,
            clip_sources,
            out,
            decoding=decoding,
            overlays=overlays,
        )
        print(f"{done} of {done + failed} clips done, {failed} failed", file=sys.stderr)
        if not sources:
            return 0 if done else 1
    results: list[BatchItem] = []
    exports: list[ExportItem] = []
    progress = _make_progress(len(sources))
    job = services.prepare(intent, services.options(decoding, args.tiles), "cli")
    batch = iter_items(services, job, sources, engine=manager, keep_images=overlays)
    for item in batch:
        progress.update(1)
        if item.ok:
            export = batch_item_to_export_item(
                item, overlay=overlays, opacity=args.opacity
            )
            exports.append(export)
        else:
            progress.write(f"failed: {item.name}: {item.error}", file=sys.stderr)
        results.append(dataclasses.replace(item, image=None))  # free the pixels
    progress.close()

    written = write_outputs(out, args.format, exports, results, polygons=args.polygons)
    ok = len(exports)
    print(
        f"{ok} of {len(results)} images done, {len(results) - ok} failed; "
        f"wrote {len(written)} files to {out}",
        file=sys.stderr,
    )
    return 0 if ok else 1


def _load(settings: Settings) -> tuple[Services, Any] | None:
    """The services and the loaded default engine; None (said) when it fails.
    The same engines as the app: BACKEND=openai and MODEL_ID=replay: work too.
    One local user: no rate limit (RATE_LIMIT is the server's)."""
    services = Services.for_process(dataclasses.replace(settings, rate_limit_per_min=0))
    manager = services.engines.default
    try:
        manager.load()
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return None
    if manager.status.error:  # loaded, but masks are unavailable
        print(f"warning: {manager.status.error}", file=sys.stderr)
    return services, manager


def write_outputs(
    out: Path,
    fmt: str,
    exports: list[ExportItem],
    results: list[BatchItem],
    *,
    polygons: bool = False,
) -> list[Path]:
    """Write the chosen format(s) and overlays into ``out``; the paths written.

    Each export format is one file named by ``core.export.formats``
    (``paligemma.coco.json``, ``paligemma-masks.zip``, ...). Stems (for
    ``<stem>.overlay.png``) come from ``core.export.unique_stems`` over the
    successful images, as in the ZIP.
    """
    formats = set(FORMATS) - {"all"} if fmt == "all" else {fmt}
    written: list[Path] = []

    def write(relative: str, data: bytes | str) -> None:
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        logger.debug("wrote %s", path)
        written.append(path)

    stems = export_stems(exports)
    options = ExportOptions(polygons=polygons)
    for name in FORMAT_NAMES:  # core.export.formats: one file per format
        if exports and name in formats:
            write(get_format(name).file_name(), export_bytes(name, exports, options))
    overlay_files: list[str | None] = []  # one per export, in order
    for export, stem in zip(exports, stems, strict=True):
        overlay_files.append(None)
        if export.overlay_png is not None:
            overlay_files[-1] = f"{stem}.overlay.png"
            write(overlay_files[-1], export.overlay_png)
    if "json" in formats:
        next_overlay = iter(overlay_files)
        images = []
        for item in results:  # exports are the ok results, in the same order
            entry = batch_item_to_dict(item)
            entry["overlay_file"] = next(next_overlay) if item.ok else None
            images.append(entry)
        write(RESULTS_NAME, json.dumps({"images": images}, ensure_ascii=False))
    return written
