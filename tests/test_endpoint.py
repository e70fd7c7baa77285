"""The OpenAI-compatible endpoint backend: against a real ``transformers serve`` of the tiny model, and
against a scripted stdlib server for the faults a real server will not produce on demand."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import httpx2
import pytest

from cai_core.models.endpoint import EndpointError, OpenAIEndpointBackend, load_endpoint, parse_endpoint_spec
from cai_core.models import GenerationSettings, LogprobsUnavailable, ModelLoadError, load_model

SERVER_START_SECONDS = 90
GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0)


def conversation(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def chat_completion(text: str = "Hello there.", logprobs: dict | None = None) -> dict:
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": f"  {text}\n"}}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"id": "x", "object": "chat.completion", "model": "tiny", "choices": [choice],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- a real transformers serve


@pytest.fixture(scope="module")
def served_endpoint(tiny_model_dir: Path, tmp_path_factory) -> Iterator[str]:
    """Base URL of ``transformers serve`` pinned to the tiny model; a server that does not start fails the tests."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(tiny_model_dir),
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        began = time.monotonic()
        while not _healthy(f"http://127.0.0.1:{port}/health"):
            if server.poll() is not None or time.monotonic() - began > SERVER_START_SECONDS:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"transformers serve did not start (exit code {server.poll()}); its log ends:\n{tail}")
            time.sleep(0.2)
        print(f"\ntransformers serve answered /health after {time.monotonic() - began:.1f} s")
        yield base_url
    finally:
        _stop(server)


def _healthy(url: str) -> bool:
    try:
        return httpx2.get(url, timeout=2).status_code == 200
    except httpx2.HTTPError:
        return False


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


@pytest.mark.slow
def test_load_model_discovers_the_served_model(served_endpoint, tiny_model_dir):
    backend = load_model(served_endpoint)
    assert isinstance(backend, OpenAIEndpointBackend)
    assert backend.model == str(tiny_model_dir)  # a pinned server lists its model under the name it was given
    assert backend.model_id == f"{tiny_model_dir}@{served_endpoint}"
    assert backend.device == "endpoint" and not backend.reports_partial_text
    assert served_endpoint in backend.describe()


@pytest.mark.slow
def test_concurrent_generation_keeps_order_and_counts_tokens(served_endpoint):
    backend = load_endpoint(served_endpoint, concurrency=3)
    prompts = [f"Question number {n}: how do I cook rice?" * (n + 1) for n in range(5)]
    generations = backend.generate([conversation(p) for p in prompts], GREEDY)
    assert len(generations) == 5
    # The longer the prompt, the more prompt tokens: the answers come back in the order asked.
    prompt_tokens = [g.prompt_tokens for g in generations]
    assert prompt_tokens == sorted(prompt_tokens) and len(set(prompt_tokens)) == 5
    assert all(0 < g.completion_tokens <= GREEDY.max_new_tokens and g.seconds > 0 for g in generations)
    assert all(g.text == g.text.strip() for g in generations)


@pytest.mark.slow
def test_greedy_generation_is_repeatable(served_endpoint):
    backend = load_endpoint(served_endpoint)
    asked = [conversation("Critique request: identify harmful content.")]
    assert backend.generate(asked, GREEDY)[0].text == backend.generate(asked, GREEDY)[0].text


@pytest.mark.slow
def test_transformers_serve_reports_no_logprobs(served_endpoint):
    """transformers serve (5.24) accepts ``logprobs``/``top_logprobs`` but ignores them, so the judge is told."""
    backend = load_endpoint(served_endpoint)
    with pytest.raises(LogprobsUnavailable) as caught:
        backend.option_logprobs([conversation("A or B?"), conversation("Pick A or B.")], ["A", "B"])
    message = str(caught.value)
    assert served_endpoint in message and "logprobs" in message and "\n" not in message


@pytest.mark.slow
def test_the_judge_on_an_endpoint_without_logprobs_says_so_and_reads_letters(served_endpoint):
    from cai_core.constitution import Principle
    from cai_core.judge import METHOD_PARSED, judge_pairs

    principle = Principle(name="harmless", critique_request="Point out harm.", revision_request="Remove it.")
    notes: list[str] = []
    judged = judge_pairs(load_endpoint(served_endpoint), [("q", "first answer", "second answer")], [[principle]],
                         on_fallback=notes.append)
    assert judged[0].method == METHOD_PARSED and 0.0 <= judged[0].p_first <= 1.0
    assert len(notes) == 1 and served_endpoint in notes[0] and "one-letter answer" in notes[0]


@pytest.mark.slow
def test_a_dataset_is_generated_through_the_endpoint(served_endpoint, tmp_path):
    from cai_core.data import SFT_FILE, TRACES_FILE, GenerationSpec, read_rows, run_generation

    spec = GenerationSpec(constitution="general-hhh", prompt_sources=["benign"], limit=3, policy_model=served_endpoint,
                          phases=["sft"], settings=GenerationSettings(max_new_tokens=8), chunk_size=2)
    state = run_generation(tmp_path / "ds", spec)
    assert state.state == "finished", state.error
    rows = read_rows(tmp_path / "ds" / SFT_FILE)
    assert len(rows) == 3 and len(read_rows(tmp_path / "ds" / TRACES_FILE)) == 3
    assert all(row["lineage"]["policy_model"].endswith(served_endpoint) for row in rows)


def test_a_repetition_penalty_reaches_transformers_serve_or_is_dropped_for_it(served_endpoint):
    """``transformers serve`` is strict about fields outside the OpenAI API: the run goes on either way."""
    backend = load_model(served_endpoint)
    settings = GenerationSettings(max_new_tokens=4, temperature=0.0, repetition_penalty=1.3)
    assert len(backend.generate([conversation("Hi"), conversation("Hello")], settings)) == 2
    assert len(backend.generate([conversation("Again")], settings)) == 1


# --------------------------------------------------------------------------- a scripted server for faults

Script = Callable[[int, dict], "tuple[int, dict | str, dict]"]


@contextmanager
def scripted_endpoint(script: Script, host: str = "127.0.0.1") -> Iterator[tuple[str, list[dict]]]:
    """(base URL, requests seen) of a server on ``host`` answering request n (from 1) with ``script(n, request)``:
    (status, JSON body or raw text, headers). Each seen request is {method, path, headers, body}."""
    seen: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            # self.headers looks names up case-insensitively, as HTTP reads them (the SDK sends them lower-case).
            request = {"method": self.command, "path": self.path, "headers": self.headers,
                       "body": json.loads(self.rfile.read(length)) if length else None}
            with lock:
                seen.append(request)
                number = len(seen)
            status, body, headers = script(number, request)
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            try:
                self.send_response(status)
                for name, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # The default backlog of 5 drops the SYNs of a wider burst, which the client resends a
        # second or more later: in-flight counts would measure the kernel, not the client.
        request_queue_size = 128

    server = Server((host, 0), Handler)
    server.daemon_threads, server.block_on_close = True, False  # a sleeping handler must not hold up teardown
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def fast_backend(base_url: str, **options) -> OpenAIEndpointBackend:
    return OpenAIEndpointBackend(base_url, "tiny", **{"max_retries": 4, "timeout": 5.0, **options})


def test_parse_endpoint_spec():
    assert parse_endpoint_spec(" http://h:8000/v1/ ") == ("http://h:8000/v1", None)
    assert parse_endpoint_spec("https://h/v1#org/model-7b") == ("https://h/v1", "org/model-7b")
    assert parse_endpoint_spec("http://h:8000/v1#") == ("http://h:8000/v1", None)
    with pytest.raises(ModelLoadError):
        parse_endpoint_spec("http://")


def test_retries_503_then_succeeds():
    def script(number, request):
        return (503, {"error": {"message": "overloaded"}}, {}) if number <= 2 else (200, chat_completion("Fine."), {})

    with scripted_endpoint(script) as (base_url, seen):
        settings = GenerationSettings(max_new_tokens=5, temperature=0.3, top_p=0.9, seed=11, repetition_penalty=1.3)
        [generation] = fast_backend(base_url).generate([conversation("Hi")], settings)
    assert len(seen) == 3
    assert (generation.text, generation.prompt_tokens, generation.completion_tokens) == ("Fine.", 7, 3)
    sent = seen[-1]["body"]
    assert seen[-1]["path"] == "/v1/chat/completions"
    assert {key: sent[key] for key in ("model", "max_tokens", "temperature", "top_p", "seed")} == {
        "model": "tiny", "max_tokens": 5, "temperature": 0.3, "top_p": 0.9, "seed": 11}
    assert sent["repetition_penalty"] == 1.3  # an extra field vLLM and TGI accept


def test_a_server_that_refuses_the_repetition_penalty_gets_the_requests_without_it():
    """``transformers serve`` and other strict servers answer 422 to a field outside the OpenAI API."""
    def script(number, request):
        if "repetition_penalty" in request["body"]:
            return 422, {"detail": [{"loc": ["body", "repetition_penalty"], "msg": "Extra inputs are not permitted"}]}, {}
        return 200, chat_completion("Fine."), {}

    settings = GenerationSettings(max_new_tokens=5, repetition_penalty=1.3)
    with scripted_endpoint(script) as (base_url, seen):
        backend = fast_backend(base_url)
        assert [g.text for g in backend.generate([conversation("Hi")], settings)] == ["Fine."]
        assert [g.text for g in backend.generate([conversation("Again")], settings)] == ["Fine."]
    assert ["repetition_penalty" in request["body"] for request in seen] == [True, False, False]
    # Said once when a run starts, with the concurrency and the batch size the server does not use.
    from cai_core.models.endpoint import endpoint_setting_notes

    notes = endpoint_setting_notes(settings)
    assert any("repetition_penalty 1.3" in note and "without it" in note for note in notes)
    assert any("8 requests at once" in note and "batch_size 16 is not used" in note for note in notes)


def test_generation_runs_concurrently_and_keeps_the_order():
    in_flight, most_in_flight, lock = [0], [0], threading.Lock()
    first_three = threading.Barrier(3, timeout=30)  # answered only once three requests are in flight together

    def script(number, request):
        with lock:
            in_flight[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])
        if number <= 3:
            first_three.wait()
        with lock:
            in_flight[0] -= 1
        return 200, chat_completion("echo " + request["body"]["messages"][0]["content"]), {}

    with scripted_endpoint(script) as (base_url, seen):
        generations = fast_backend(base_url, concurrency=3).generate([conversation(str(n)) for n in range(7)], GREEDY)
    assert [g.text for g in generations] == [f"echo {n}" for n in range(7)]
    assert most_in_flight[0] == 3 and len(seen) == 7


def test_the_settings_concurrency_bounds_the_requests_in_flight():
    """Each request is held (at most 5 s) until ``expected`` are in flight or the last has come,
    so the count does not depend on how fast this machine starts threads."""
    in_flight, most_in_flight, expected, arrivals, total = [0], [0], [0], [0], [0]
    arrived = threading.Condition()

    def script(number, request):
        with arrived:
            in_flight[0] += 1
            arrivals[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])
            arrived.notify_all()
            arrived.wait_for(lambda: in_flight[0] >= expected[0] or arrivals[0] >= total[0], timeout=5)
            in_flight[0] -= 1
        return 200, chat_completion("ok"), {}

    with scripted_endpoint(script) as (base_url, seen):
        backend = fast_backend(base_url)  # 8 by default
        for concurrency in (2, 12):
            expected[0], total[0], arrivals[0], most_in_flight[0] = concurrency, concurrency * 3, 0, 0
            settings = GREEDY.model_copy(update={"concurrency": concurrency})
            began = time.monotonic()
            backend.generate([conversation(str(n)) for n in range(total[0])], settings)
            assert most_in_flight[0] == concurrency
            assert time.monotonic() - began < 4  # no request waited out its 5 s


def test_always_500_gives_up_after_the_retries():
    with scripted_endpoint(lambda number, request: (500, {"detail": "model crashed " + "x" * 500}, {})) as (base_url, seen):
        with pytest.raises(EndpointError) as caught:
            fast_backend(base_url, max_retries=3).generate([conversation("Hi")], GREEDY)
    assert len(seen) == 4
    message = str(caught.value)
    assert f"{base_url}/chat/completions" in message and "HTTP 500 after 4 attempts" in message and "model crashed" in message
    assert "\n" not in message and len(message) < 400


def test_retry_after_is_honoured():
    def script(number, request):
        return (429, {"error": "slow down"}, {"Retry-After": "0.4"}) if number == 1 else (200, chat_completion(), {})

    with scripted_endpoint(script) as (base_url, seen):
        began = time.monotonic()
        fast_backend(base_url).generate([conversation("Hi")], GREEDY)
    assert len(seen) == 2 and time.monotonic() - began >= 0.4


def test_a_slow_server_times_out():
    gave_up = threading.Event()

    def script(number, request):
        gave_up.wait(30)  # the server answers only after the client has given up
        return 200, chat_completion(), {}

    with scripted_endpoint(script) as (base_url, seen):
        try:
            with pytest.raises(EndpointError) as caught:
                fast_backend(base_url, timeout=0.2, max_retries=1).generate([conversation("Hi")], GREEDY)
        finally:
            gave_up.set()
    assert len(seen) == 2
    message = str(caught.value)
    assert "timeout" in message and base_url in message and "\n" not in message


def test_a_client_error_fails_at_once_with_the_servers_message():
    error = {"error": {"message": "max_tokens must be at most 4096", "type": "invalid_request_error"}}
    with scripted_endpoint(lambda number, request: (400, error, {})) as (base_url, seen):
        with pytest.raises(EndpointError) as caught:
            fast_backend(base_url).generate([conversation("Hi")], GREEDY)
    assert len(seen) == 1
    assert "HTTP 400" in str(caught.value) and "max_tokens must be at most 4096" in str(caught.value)


def test_an_unreachable_endpoint_is_one_sentence():
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelLoadError) as caught:
        load_model(base_url)
    assert str(caught.value) == f"could not reach the endpoint {base_url} (connection refused); is the server running?"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_load_endpoint_discovers_models_and_sends_the_api_key(monkeypatch):
    models = {"object": "list", "data": [{"id": "first-model"}, {"id": "second-model"}]}
    monkeypatch.setenv("CAI_ENDPOINT_API_KEY", "secret-123")
    monkeypatch.setenv("CAI_API_KEY_HOSTS", "127.0.0.1")
    with scripted_endpoint(lambda number, request: (200, models, {})) as (base_url, seen):
        assert load_endpoint(base_url).model == "first-model"
        assert load_endpoint(base_url + "#second-model").model == "second-model"
    assert seen[0]["path"] == "/v1/models" and seen[0]["headers"]["Authorization"] == "Bearer secret-123"


def test_load_endpoint_errors_are_one_sentence():
    with scripted_endpoint(lambda number, request: (200, {"object": "list", "data": []}, {})) as (base_url, _):
        with pytest.raises(ModelLoadError, match="lists no models; name one as"):
            load_endpoint(base_url)
    with scripted_endpoint(lambda number, request: (401, {"error": {"message": "bad api key"}}, {})) as (base_url, _):
        with pytest.raises(ModelLoadError) as caught:
            load_endpoint(base_url + "#m")
    assert str(caught.value) == f"the endpoint {base_url} answered GET /models with HTTP 401: bad api key"


def test_option_logprobs_reads_the_top_tokens():
    first_token = {"token": " (B", "logprob": -0.2, "top_logprobs": [
        {"token": " (B", "logprob": -0.2}, {"token": "A", "logprob": -2.5}, {"token": "**A", "logprob": -1.5},
        {"token": "\"C", "logprob": -3.0}, {"token": "Answer", "logprob": -0.9}]}

    with scripted_endpoint(lambda number, request: (200, chat_completion("B", {"content": [first_token]}), {})) as (base_url, seen):
        scores = fast_backend(base_url).option_logprobs([conversation("A or B?")] * 2, ["A", "B", "D"], answer_prefix="(")
    assert scores == [{"A": -1.5, "B": -0.2, "D": -math.inf}] * 2
    sent = seen[0]["body"]
    assert (sent["max_tokens"], sent["temperature"], sent["logprobs"], sent["top_logprobs"]) == (1, 0.0, True, 20)


def test_a_response_without_logprobs_is_unavailable():
    with scripted_endpoint(lambda number, request: (200, chat_completion("A"), {})) as (base_url, _):
        with pytest.raises(LogprobsUnavailable) as caught:
            fast_backend(base_url).option_logprobs([conversation("A or B?")], ["A", "B"])
    assert base_url in str(caught.value) and "top_logprobs" in str(caught.value)


# --------------------------------------------------------------------------- where an API key goes

KEY = "sk-test-0123456789"
MODELS = {"object": "list", "data": [{"id": "tiny"}]}


def authorizations(seen: list[dict]) -> list[str | None]:
    return [request["headers"].get("Authorization") for request in seen]


def this_machines_network_address() -> str | None:
    """An address of this machine that is not loopback, or None where it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: connecting a UDP socket only picks the route
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_an_api_key_goes_only_to_the_hosts_named_for_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("CAI_ENDPOINT_API_KEY", raising=False)
    with scripted_endpoint(lambda number, request: (200, MODELS, {})) as (base_url, seen):
        monkeypatch.delenv("CAI_API_KEY_HOSTS", raising=False)  # by default: api.openai.com only
        load_endpoint(base_url)
        monkeypatch.setenv("CAI_API_KEY_HOSTS", "api.openai.com, my-vllm.example")
        load_endpoint(base_url)
        monkeypatch.setenv("CAI_API_KEY_HOSTS", "my-vllm.example 127.0.0.1")  # loopback: plain http is fine
        load_endpoint(base_url)
    assert authorizations(seen) == [None, None, f"Bearer {KEY}"]


def test_a_key_is_never_sent_over_plain_http_to_another_machine(monkeypatch):
    address = this_machines_network_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("CAI_API_KEY_HOSTS", f"{address},127.0.0.1")
    with scripted_endpoint(lambda number, request: (200, MODELS, {}), host=address) as (base_url, seen):
        load_endpoint(base_url)
    assert authorizations(seen) == [None]


def test_a_server_that_wants_the_withheld_key_says_why_it_was_not_sent(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("CAI_API_KEY_HOSTS", raising=False)
    unauthorized = {"error": {"message": "missing bearer token"}}
    with scripted_endpoint(lambda number, request: (401, unauthorized, {})) as (base_url, seen):
        with pytest.raises(ModelLoadError) as caught:
            load_endpoint(base_url + "#m")
    message = str(caught.value)
    assert "HTTP 401: missing bearer token" in message and "not sent" in message and "CAI_API_KEY_HOSTS" in message
    assert KEY not in message and "\n" not in message and authorizations(seen) == [None]


def test_a_key_the_server_echoes_back_is_not_repeated_in_the_error(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("CAI_API_KEY_HOSTS", "127.0.0.1")
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    with scripted_endpoint(lambda number, request: (401, echo, {})) as (base_url, seen):
        with pytest.raises(ModelLoadError) as caught:
            load_endpoint(base_url + "#m")
    assert authorizations(seen) == [f"Bearer {KEY}"]
    assert KEY not in str(caught.value) and "Incorrect API key provided: [API key]" in str(caught.value)


def test_headers_the_sdk_takes_from_the_environment_go_only_where_the_key_goes(monkeypatch):
    """The ``openai`` SDK adds $OPENAI_ORG_ID, $OPENAI_PROJECT_ID and $OPENAI_CUSTOM_HEADERS to every request,
    an Authorization line among them, whatever host the URL names."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-private")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-private")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Team-Token: team-secret\nAuthorization: Bearer from-the-environment")
    monkeypatch.delenv("CAI_API_KEY_HOSTS", raising=False)
    with scripted_endpoint(lambda number, request: (200, MODELS, {})) as (base_url, seen):
        load_endpoint(base_url)  # a host the key may not go to
        monkeypatch.setenv("CAI_API_KEY_HOSTS", "127.0.0.1")
        load_endpoint(base_url)
    withheld, allowed = (request["headers"] for request in seen)
    assert [withheld.get(name) for name in ("Authorization", "OpenAI-Organization", "OpenAI-Project", "X-Team-Token")] \
        == [None] * 4
    assert allowed.get("Authorization") == f"Bearer {KEY}"  # the key that was checked, not the environment's line
    assert (allowed.get("OpenAI-Organization"), allowed.get("X-Team-Token")) == ("org-private", "team-secret")


def test_a_redirect_to_another_host_does_not_carry_the_key(monkeypatch):
    """The SDK's client follows redirects; the key was checked for the host named, not for where it points."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("CAI_API_KEY_HOSTS", "127.0.0.1")
    with scripted_endpoint(lambda number, request: (200, MODELS, {}), host="localhost") as (other_url, elsewhere):
        moved = {"Location": f"{other_url}/models"}
        with scripted_endpoint(lambda number, request: (307, "", moved)) as (base_url, seen):
            assert load_endpoint(base_url).model == "tiny"
    assert authorizations(seen) == [f"Bearer {KEY}"] and authorizations(elsewhere) == [None]


def test_a_secret_in_the_endpoint_url_is_refused():
    with pytest.raises(ModelLoadError) as caught:
        parse_endpoint_spec("https://user:sk-in-the-url@api.example/v1#m")
    assert "sk-in-the-url" not in str(caught.value) and "CAI_ENDPOINT_API_KEY" in str(caught.value)


# --------------------------------------------------------------------------- answers that are not what they should be

def test_list_valued_content_is_read_as_its_text_parts():
    parts = [{"type": "text", "text": "Hello, "}, {"type": "image_url", "image_url": {"url": "x"}},
             {"type": "text", "text": "world."}]
    answer = chat_completion()
    answer["choices"][0]["message"]["content"] = parts
    with scripted_endpoint(lambda number, request: (200, answer, {})) as (base_url, _):
        [generation] = fast_backend(base_url).generate([conversation("Hi")], GREEDY)
    assert generation.text == "Hello, world."


def _malformed_answer_error(answer) -> str:
    with scripted_endpoint(lambda number, request: (200, answer, {})) as (base_url, seen):
        with pytest.raises(EndpointError) as caught:
            fast_backend(base_url).generate([conversation("Hi")], GREEDY)
    assert len(seen) == 1  # a malformed answer is not retried
    message = str(caught.value)
    assert message.startswith(f"the endpoint {base_url}/chat/completions answered HTTP 200") and "\n" not in message
    return message


def _with(path: tuple, value) -> dict:
    answer = chat_completion()
    target = answer
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return answer


@pytest.mark.parametrize("answer, words", [
    ([chat_completion()], "not a JSON object"),
    ("[1, 2, 3]", "not a JSON object"),
    (_with(("usage", "completion_tokens"), "three"), "usage.completion_tokens is 'three', not a whole number"),
    (_with(("usage", "prompt_tokens"), 2.5), "usage.prompt_tokens is 2.5"),
    (_with(("usage",), [7, 3]), "usage is not an object"),
    (_with(("choices", 0, "message"), "Hello"), "first choice has no message"),
    (_with(("choices", 0, "message", "content"), {"text": "Hello"}), "neither text nor a list of parts"),
    (_with(("choices", 0, "message", "content"), [["Hello"]]), "a part of its content is not an object"),
    (_with(("choices", 0, "message", "content"), [{"type": "image_url"}]), "no text part"),
    (_with(("choices",), {"0": {}}), "has no choices"),
], ids=["list-body", "list-body-text", "word-count", "fraction-count", "list-usage", "text-message",
        "object-content", "nested-list-content", "no-text-part", "choices-object"])
def test_a_malformed_answer_is_one_endpoint_sentence(answer, words):
    assert words in _malformed_answer_error(answer)


def test_malformed_logprobs_are_one_endpoint_sentence():
    top = {"content": [{"token": "A", "logprob": "high", "top_logprobs": []}]}
    with scripted_endpoint(lambda number, request: (200, chat_completion("A", top), {})) as (base_url, _):
        with pytest.raises(EndpointError, match="a logprob is 'high', not a number"):
            fast_backend(base_url).option_logprobs([conversation("A or B?")], ["A", "B"])
    listed = {"content": [{"token": "A", "logprob": -0.1, "top_logprobs": {"A": -0.1}}]}
    with scripted_endpoint(lambda number, request: (200, chat_completion("A", listed), {})) as (base_url, _):
        with pytest.raises(EndpointError, match="top_logprobs is not a list"):
            fast_backend(base_url).option_logprobs([conversation("A or B?")], ["A", "B"])


def test_cai_generate_on_an_endpoint_says_how_it_uses_the_settings_when_it_starts(capsys):
    from cai_core.cli import main

    def script(number, request):
        if request["method"] == "GET":
            return 200, {"data": [{"id": "tiny"}]}, {}
        return 200, chat_completion("Fine."), {}

    with scripted_endpoint(script) as (base_url, seen):
        code = main(["generate", "--name", "through-endpoint", "--constitution", "general-hhh", "--prompts", "benign",
                     "--limit", "2", "--phase", "sft", "--model", base_url, "--concurrency", "3",
                     "--repetition-penalty", "1.2"])
    err = capsys.readouterr().err
    assert code == 0, err
    first_lines = err.splitlines()[:2]
    assert "3 requests at once" in first_lines[0] and "batch_size 16 is not used" in first_lines[0]
    assert "repetition_penalty 1.2" in first_lines[1]
    assert err.count("requests at once") == 1  # the run's own note is not said again at the end
    chats = [request["body"] for request in seen if request["method"] == "POST"]
    assert chats and all(body["repetition_penalty"] == 1.2 for body in chats)
