"""A clip's answer as files: MOT text and one COCO-video JSON.

MOT (MOTChallenge): one line per object per sampled frame,
``frame,id,x,y,w,h,conf,-1,-1,-1`` (frame 1-based among the samples, box
top-left and size in pixels, conf 1: PaliGemma gives no scores).
COCO video (as TAO / YouTube-VIS): ``videos``, ``images`` (one per sampled
frame, with ``frame_id`` and ``time_s``), ``annotations`` with ``track_id``
(and ``segmentation`` as RLE when the request segments), ``tracks``,
``categories``.
"""

from __future__ import annotations

from typing import Any

from core.export.items import category_name
from core.video.track import VideoResult


def mot_text(result: VideoResult) -> str:
    lines = []
    for frame in result.frames:
        for obj in frame.objects:
            x1, y1, x2, y2 = obj.box_px
            lines.append(
                f"{frame.index},{obj.track_id},{x1},{y1},{x2 - x1},{y2 - y1},1,-1,-1,-1"
            )
    return "\n".join(lines) + ("\n" if lines else "")


def coco_video(result: VideoResult, name: str = "clip") -> dict:
    """The COCO-video dict of ``result`` (``name``: the clip's file name)."""
    width, height = result.info.size_wh
    names = sorted({category_name(o.label) for f in result.frames for o in f.objects})
    category = {n: i for i, n in enumerate(names, start=1)}
    images, annotations, tracks = [], [], {}
    for frame in result.frames:
        images.append(
            {
                "id": frame.index,
                "video_id": 1,
                "frame_id": frame.index - 1,
                "source_frame": frame.source_frame,
                "time_s": round(frame.time_s, 3),
                "width": width,
                "height": height,
                "file_name": f"{name}#frame{frame.source_frame}",
            }
        )
        for obj in frame.objects:
            x1, y1, x2, y2 = obj.box_px
            cat = category[category_name(obj.label)]
            tracks.setdefault(obj.track_id, cat)
            annotation = {
                "id": len(annotations) + 1,
                "image_id": frame.index,
                "video_id": 1,
                "track_id": obj.track_id,
                "category_id": cat,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": obj.area,
                "iscrowd": 0,
            }
            if obj.rle is not None:
                annotation["segmentation"] = obj.rle
            annotations.append(annotation)
    return {
        "videos": [{"id": 1, "name": name, "width": width, "height": height}],
        "images": images,
        "annotations": annotations,
        "tracks": [
            {"id": tid, "category_id": cat, "video_id": 1}
            for tid, cat in sorted(tracks.items())
        ],
        "categories": [{"id": i, "name": n} for n, i in category.items()],
    }


def clip_to_dict(result: VideoResult, name: str) -> dict[str, Any]:
    """One clip's JSON: its sampling, every analysed frame with its objects
    (track ids, boxes in pixels), the track ids and the MOT text."""
    info = result.info
    return {
        "filename": name,
        "kind": "video",
        "prompt": result.intent.prompt,
        "task": result.intent.task,
        "image_size_wh": list(info.size_wh),
        "duration_s": round(info.duration_s, 3),
        "sample_fps": round(info.sample_fps, 4),
        "stopped": result.stopped,
        "frames": [
            {
                "frame": f.index,
                "source_frame": f.source_frame,
                "time_s": round(f.time_s, 3),
                "raw_text": f.raw_text,
                "truncated": f.truncated,
                "objects": [
                    {
                        "track_id": o.track_id,
                        "label": o.label,
                        "box": list(o.box_px),
                        "area": o.area,
                        **({"mask_rle": o.rle} if o.rle is not None else {}),
                    }
                    for o in f.objects
                ],
            }
            for f in result.frames
        ],
        "tracks": result.track_ids,
        "mot": mot_text(result),
    }
