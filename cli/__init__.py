"""The batch command-line door: ``python -m cli PROMPT FOLDER`` (cli/main.py)."""
