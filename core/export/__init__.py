"""Exports of analysis results: COCO (RLE), YOLO-seg, mask PNGs, ZIP, downloads.

``formats.py`` writes the files, ``masks.py`` holds the mask codecs (RLE,
polygons, PNG), ``downloads.py`` writes the chat's download files.
"""
