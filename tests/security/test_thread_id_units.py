"""One spelling per thread id: the canonical check, the socket, message and
route refusals, and the data layer's own guard (no server started)."""

from __future__ import annotations

import uuid
from contextlib import nullcontext as does_not_raise

import pytest
from chainlit.context import init_http_context
from chainlit.user import User
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from chat.persist.db import AppDataLayer
from chat.persist.storage import LocalStorageClient
from core.persist.locations import async_database_url, thread_folder
from core.security.threads import (
    canonical_thread_id,
    message_thread_refusal,
    thread_id_refusal,
)
from web.threads import ThreadIdMiddleware

ID = "8c1f3c52-1a4b-4f7e-9d55-0a4b8e0e6c11"
HEX = ID.replace("-", "")
SPELLINGS = [  # other spellings of ID that uuid.UUID reads as the same UUID
    ID.upper(),  # upper case
    "{" + ID + "}",  # braces
    "urn:uuid:" + ID,  # URN
    HEX,  # no hyphens
    ID[:9] + ID[9:].upper(),  # mixed case
    ID.replace("-", "", 1),  # one hyphen missing
    "{" + HEX.upper() + "}",  # braces, upper case, no hyphens
]
NOT_UUIDS = ["", " " + ID, ID + "\n", "../../etc", ID + "0", None, 7]
REFUSED = pytest.raises(ValueError, match="lowercase hyphenated UUIDs")


@pytest.mark.parametrize(
    ("value", "expectation"),
    [
        (ID, does_not_raise()),  # canonical
        (str(uuid.uuid4()), does_not_raise()),  # what the browser makes
        *[(spelling, REFUSED) for spelling in SPELLINGS],
        *[(value, REFUSED) for value in NOT_UUIDS],
        (uuid.UUID(ID), REFUSED),  # an object, not the string
    ],
)
def test_canonical_thread_id_and_thread_folder(tmp_path, value, expectation):
    assert all(uuid.UUID(s) == uuid.UUID(ID) for s in SPELLINGS)  # same UUID
    with expectation:
        assert canonical_thread_id(value) == value
    with expectation:
        folder = thread_folder(tmp_path, value)
        assert folder == tmp_path / value


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_socket_auth_and_messages_refuse_other_spellings(spelling):
    assert "refused" in thread_id_refusal({"sessionId": ID, "threadId": spelling})
    payload = {"message": {"id": ID, "threadId": spelling, "output": "hi"}}
    assert "refused" in message_thread_refusal(payload, ID)


@pytest.mark.parametrize(
    ("thread", "session_thread", "refused"),
    [
        (None, ID, False),  # no threadId key
        ("", ID, False),  # what the browser sends
        (ID, ID, False),  # the socket's own thread
        (str(uuid.uuid4()), ID, True),  # another thread
        (ID, None, True),  # a socket that has no session
    ],
)
def test_message_thread_must_be_the_sockets_own(thread, session_thread, refused):
    message = {"id": ID, "output": "hi"} | ({"threadId": thread} if thread else {})
    reason = message_thread_refusal({"message": message}, session_thread)
    assert (reason is not None) == refused, reason
    assert thread_id_refusal({"sessionId": ID, "threadId": thread}) is None


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"path": request.url.path, "body": body.decode()})


@pytest.fixture
def http() -> TestClient:
    routes = [
        Route("/project/thread/{tid}", _echo),
        Route("/project/thread/{tid}/element/{eid}", _echo),
        Route("/project/share/{tid}", _echo),
        Route("/project/thread", _echo, methods=["PUT", "DELETE"]),
        Route("/project/thread/share", _echo, methods=["PUT"]),
        Route("/project/element", _echo, methods=["PUT", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(ThreadIdMiddleware)
    return TestClient(app)


@pytest.mark.parametrize("thread", [ID, *SPELLINGS[:5]])
def test_routes_refuse_other_spellings_in_path_and_body(http, thread):
    expected = 200 if thread == ID else 400
    for path in (
        f"/project/thread/{thread}",
        f"/project/thread/{thread}/element/{ID}",
        f"/project/share/{thread}",
    ):
        response = http.get(path)
        assert response.status_code == expected, (path, response.text)
    for method, path, body in (
        ("PUT", "/project/thread", {"threadId": thread, "name": "x"}),
        ("DELETE", "/project/thread", {"threadId": thread}),
        ("PUT", "/project/thread/share", {"threadId": thread, "isShared": True}),
        ("DELETE", "/project/element", {"element": {"threadId": thread}}),
    ):
        response = http.request(method, path, json=body)
        assert response.status_code == expected, (method, path, response.text)
        if expected == 200:  # the body the guard read reaches the route intact
            assert thread in response.json()["body"]
        else:
            assert "lowercase hyphenated" in response.json()["error"]["message"]


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_body_thread_id_names_no_thread(http, empty):
    body = {"element": {"threadId": empty, "id": ID}}
    assert http.request("PUT", "/project/element", json=body).status_code == 200


@pytest.fixture
async def layer(tmp_path):
    url = async_database_url(None, tmp_path)
    storage = LocalStorageClient(tmp_path / "files", "k" * 40)
    data_layer = AppDataLayer(url, storage, tmp_path / "threads")
    await data_layer.create_schema()
    init_http_context()
    yield data_layer
    await data_layer.close()


async def test_data_layer_reads_nothing_and_writes_nothing_by_another_spelling(
    layer,
):
    user = await layer.create_user(User(identifier="alice"))
    await layer.update_thread(ID, name="alice's", user_id=user.id)
    folder = layer.threads_root / ID
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{}")
    for spelling in SPELLINGS:
        assert await layer.get_thread_author(spelling) == ""
        assert await layer.get_thread(spelling) is None
        assert await layer.get_element(spelling, ID) is None
        with REFUSED:
            await layer.update_thread(spelling, name="mallory's", user_id=user.id)
        with REFUSED:
            await layer.delete_thread(spelling)
        step = {"id": str(uuid.uuid4()), "threadId": spelling, "name": "s"}
        with REFUSED:
            await layer.create_step(step | {"type": "run", "streaming": False})
    assert folder.joinpath("state.json").read_text() == "{}"
    assert await layer.get_thread_author(ID) == "alice"
    assert (await layer.get_thread(ID))["name"] == "alice's"
