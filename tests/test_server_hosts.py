"""The running web server answers only requests addressed to this machine by a loopback name.

A web page can re-point its own domain at 127.0.0.1 (DNS rebinding); its requests then reach the app
with that domain as Host and Origin, same-origin to the browser. Everything the app does runs over
its WebSocket, so that handshake must be refused for any Host but a loopback name.
"""

from __future__ import annotations

import base64
import os
import socket
from urllib.parse import urlparse

import pytest

from browser_util import streamlit_server

pytestmark = pytest.mark.slow


def websocket_handshake_status(port: int, host: str) -> int:
    """The HTTP status the server answers a browser's WebSocket handshake for the app with."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: streamlit\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request.encode())
        status_line = connection.makefile("rb").readline(1024).decode("latin-1")
    return int(status_line.split()[1])


@pytest.fixture(scope="module")
def server_port(tiny_model_dir, tmp_path_factory) -> int:
    folder = tmp_path_factory.mktemp("server")
    with streamlit_server(folder / "cai-home", tiny_model_dir, folder / "streamlit.log") as base_url:
        yield urlparse(base_url).port


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "192.0.2.7:{port}", "localhost.evil.example"])
def test_a_request_for_another_host_is_refused(server_port, host):
    assert websocket_handshake_status(server_port, host.format(port=server_port)) == 403


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"])
def test_a_request_for_a_loopback_name_is_served(server_port, host):
    assert websocket_handshake_status(server_port, host.format(port=server_port)) == 101
