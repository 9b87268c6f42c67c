"""The outbound filter's units: secret query values, and model ids as names.

The doors that use them are driven end to end in test_outbound_redaction.py.
"""

from __future__ import annotations

import pytest

from core.security import redact, shown_model_id


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("http://h/v1?api_key=k1&n=2", "k1", "api_key=***&n=2"),  # case: api_key
        ("http://h/?access_token=k2", "k2", "access_token=***"),  # case: OAuth
        ("http://h/?x=1&client_secret=k3", "k3", "client_secret=***"),  # prefixed
        ("http://h/f.jpg?expires=9&sig=k4", "k4", "expires=9&sig=***"),  # signed
        ("http://h/?X-Amz-Signature=k5", "k5", "X-Amz-Signature=***"),  # S3 link
        ("http://h/?password=k6#top", "k6", "password=***#top"),  # case: fragment
        ("http://h/?monkey=banana", "", "monkey=banana"),  # not a secret name
    ],
)
def test_redact_hides_secret_query_values(text, hidden, kept):
    shown = redact(text)
    assert kept in shown
    if hidden:
        assert hidden not in shown


@pytest.mark.parametrize(
    ("model_id", "shown"),
    [
        ("/tmp/x/tiny-pg2", "tiny-pg2"),  # case: a local folder, its name
        ("/tmp/x/tiny-pg2/", "tiny-pg2"),  # case: trailing slash
        ("~/models/pg2", "pg2"),  # case: home folder
        ("./models/pg2", "pg2"),  # case: relative folder
        ("C:\\models\\pg2", "pg2"),  # case: Windows
        ("replay:/srv/a/recording.json", "replay:recording.json"),  # recording
        ("google/paligemma2-3b-mix-448", "google/paligemma2-3b-mix-448"),  # hub
        ("auto", "auto"),  # case: the engine's choice
        (None, None),  # case: nothing loaded
    ],
)
def test_shown_model_id_is_a_name_never_a_path(model_id, shown):
    assert shown_model_id(model_id) == shown
