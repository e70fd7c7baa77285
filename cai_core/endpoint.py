"""Generation on any OpenAI-compatible chat endpoint (vLLM, TGI, ``transformers serve``, llama.cpp server).

A model spec ``http://host:port/v1#model-name`` (or without ``#model-name``: the first model the server
lists) names the endpoint; ``load_model`` hands such specs to ``load_endpoint``.

Why httpx2 rather than the ``openai`` SDK or ``requests``: it is already in the stack (huggingface_hub
depends on it), it is well kept, and its ``Client`` gives per-request timeouts and a thread-safe
connection pool, which is all a few hundred concurrent chat calls need. The retry policy (which
failures to retry, Retry-After, how many attempts) and the one-sentence errors that name the URL and
status are ours to state and test; the SDK would hide the attempts behind its own retry loop and
exception types, for a heavier dependency.
"""

from __future__ import annotations

import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Callable, Sequence, TypeVar
from urllib.parse import urlparse

import httpx2

from .models import Generation, GenerationBackend, GenerationSettings, LogprobsUnavailable, ModelLoadError

API_KEY_VARIABLES = ("CAI_ENDPOINT_API_KEY", "OPENAI_API_KEY")
MAX_RETRY_DELAY = 60.0  # seconds; also caps a Retry-After, so a bad header cannot stall a run for hours
ERROR_MESSAGE_CHARS = 200
# What a judge's option token may carry before the letter: "(A", "*A", "\"A".
OPTION_TOKEN_DECORATION = "(*\"'“‘`"

Item = TypeVar("Item")
Result = TypeVar("Result")


class EndpointError(Exception):
    """A request the endpoint did not answer, after the retries; the message is one sentence."""

    def __init__(self, url: str, detail: str, *, status: int | None = None, attempts: int = 1,
                 timed_out: bool = False):
        self.url, self.detail, self.status, self.attempts, self.timed_out = url, detail, status, attempts, timed_out
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if status is not None:
            message = f"the endpoint {url} answered HTTP {status}{tries}: {detail}"
        elif timed_out:
            message = f"the endpoint {url} gave {detail}{tries}"
        else:
            message = f"could not reach the endpoint {url} ({detail}){tries}; is the server running?"
        super().__init__(message)


def parse_endpoint_spec(spec: str) -> tuple[str, str | None]:
    """``http://host:port/v1#model`` -> (base URL without a trailing slash, model name or None)."""
    base_url, _, model = spec.strip().partition("#")
    base_url = base_url.strip().rstrip("/")
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ModelLoadError(f"endpoint {spec!r} is not a URL like http://host:port/v1 or http://host:port/v1#model-name")
    return base_url, model.strip() or None


def load_endpoint(spec: str, *, api_key: str | None = None, concurrency: int = 8, timeout: float = 120.0,
                  max_retries: int = 4, retry_base_delay: float = 0.5) -> OpenAIEndpointBackend:
    """Connect to the endpoint, checking it answers GET /models; without ``#model``, use the first model listed."""
    base_url, model = parse_endpoint_spec(spec)
    if api_key is None:
        api_key = next((os.environ[name].strip() for name in API_KEY_VARIABLES if os.environ.get(name, "").strip()), None)
    backend = OpenAIEndpointBackend(base_url, model or "", api_key=api_key, concurrency=concurrency, timeout=timeout,
                                    max_retries=max_retries, retry_base_delay=retry_base_delay)
    try:  # no retries: whoever picked the endpoint is waiting to hear whether it is there
        listing = backend.request("GET", "/models", retries=0)
    except EndpointError as error:
        if error.status is None:
            raise ModelLoadError(f"could not reach the endpoint {base_url} ({error.detail}); is the server running?") from None
        if not (model and error.status == 404):  # a server without /models still serves a named model
            raise ModelLoadError(f"the endpoint {base_url} answered GET /models with HTTP {error.status}: {error.detail}") from None
        listing = {}
    if not model:
        entries = listing.get("data") if isinstance(listing, dict) else None
        listed = [entry["id"] for entry in entries or [] if isinstance(entry, dict) and entry.get("id")]
        if not listed:
            raise ModelLoadError(f"the endpoint {base_url} lists no models; name one as {base_url}#model-name")
        backend.model = listed[0]
    return backend


class OpenAIEndpointBackend(GenerationBackend):
    """Chat completions over HTTP: one request per conversation, ``concurrency`` of them in flight."""

    device = "endpoint"
    reports_partial_text = False

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, concurrency: int = 8,
                 timeout: float = 120.0, max_retries: int = 4, retry_base_delay: float = 0.5):
        self.base_url, self.model = base_url.rstrip("/"), model
        self.concurrency, self.timeout = max(1, concurrency), timeout
        self.max_retries, self.retry_base_delay = max(0, max_retries), retry_base_delay
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx2.Client(timeout=timeout, headers=headers,
                                     limits=httpx2.Limits(max_connections=max(self.concurrency, 10)))

    @property
    def model_id(self) -> str:  # type: ignore[override]
        return f"{self.model}@{self.base_url}"

    def describe(self) -> str:
        return f"{self.model} at the OpenAI-compatible endpoint {self.base_url}"

    def close(self) -> None:
        self._client.close()

    def generate(self, conversations: list[list[dict]], settings: GenerationSettings) -> list[Generation]:
        def complete(conversation: list[dict]) -> Generation:
            began = time.perf_counter()
            # repetition_penalty is not sent: it is not in the OpenAI API, and strict servers
            # (``transformers serve`` among them) reject a request with unknown fields (HTTP 422).
            answer = self.request("POST", "/chat/completions", {
                "model": self.model, "messages": conversation, "max_tokens": settings.max_new_tokens,
                "temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed,
            })
            usage = answer.get("usage") or {}
            message = _first_choice(answer, self.base_url).get("message") or {}
            return Generation(text=(message.get("content") or "").strip(),
                              prompt_tokens=int(usage.get("prompt_tokens") or 0),
                              completion_tokens=int(usage.get("completion_tokens") or 0),
                              seconds=time.perf_counter() - began)

        return self._map(complete, conversations)

    def option_logprobs(self, conversations: list[list[dict]], options: Sequence[str],
                        answer_prefix: str = "", batch_size: int = 16) -> list[dict[str, float]]:
        """Each option's log-probability as the first token of a one-token greedy answer.

        ``answer_prefix`` is ignored: a chat endpoint cannot portably be made to continue a partly
        written assistant turn (only some servers offer ``continue_final_message``); the judge's user
        message already asks for a single letter. ``batch_size`` is ignored too: the server batches,
        and ``concurrency`` bounds the requests in flight.
        """
        def score(conversation: list[dict]) -> dict[str, float]:
            try:
                answer = self.request("POST", "/chat/completions", {
                    "model": self.model, "messages": conversation, "max_tokens": 1, "temperature": 0.0,
                    "logprobs": True, "top_logprobs": 20,
                })
            except EndpointError as error:  # a strict server may refuse the logprobs fields outright
                if error.status in (400, 422) and "logprob" in error.detail.lower():
                    raise self._no_logprobs() from None
                raise
            tokens = (_first_choice(answer, self.base_url).get("logprobs") or {}).get("content") or []
            if not tokens or not isinstance(tokens[0], dict) or "logprob" not in tokens[0]:
                raise self._no_logprobs()
            scores = dict.fromkeys(options, float("-inf"))
            for candidate in [tokens[0], *(tokens[0].get("top_logprobs") or [])]:
                text = str(candidate.get("token", "")).strip().lstrip(OPTION_TOKEN_DECORATION).strip()
                if text in scores and candidate.get("logprob") is not None:
                    scores[text] = max(scores[text], float(candidate["logprob"]))
            return scores

        return self._map(score, conversations)

    def _no_logprobs(self) -> LogprobsUnavailable:
        return LogprobsUnavailable(
            f"the endpoint {self.base_url} returned no token log-probabilities for {self.model}; the judge needs "
            "an endpoint that supports `logprobs`/`top_logprobs` on chat completions"
        )

    def _map(self, function: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
        """``function`` over ``items`` with up to ``concurrency`` in flight, results in input order."""
        if len(items) <= 1:
            return [function(item) for item in items]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="cai-endpoint")
        try:
            return list(pool.map(function, items))
        finally:  # on a failure, requests not yet sent are dropped rather than waited for
            pool.shutdown(wait=True, cancel_futures=True)

    def request(self, method: str, path: str, payload: dict | None = None, *, retries: int | None = None) -> dict:
        """The JSON answer to one request, retrying connection errors, timeouts, 429 and 5xx with
        exponential backoff and jitter; other 4xx fail at once. Raises EndpointError."""
        url = f"{self.base_url}{path}"
        retries = self.max_retries if retries is None else retries
        for attempt in range(retries + 1):
            wait: float | None = None
            timed_out = False
            try:
                response = self._client.request(method, url, json=payload)
            except httpx2.TimeoutException:
                status, detail, timed_out = None, f"no answer within the {self.timeout:g} s timeout", True
            except httpx2.TransportError as error:
                status, detail = None, _transport_problem(error)
            else:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise EndpointError(url, f"the body is not JSON: {_trim(response.text)}", status=status) from None
                detail = _server_message(response)
                if status != 429 and status < 500:
                    raise EndpointError(url, detail, status=status, attempts=attempt + 1)
                wait = _retry_after_seconds(response.headers.get("retry-after"))
            if attempt < retries:
                backoff = self.retry_base_delay * 2 ** attempt * (0.5 + random.random())  # jitter spreads retries apart
                time.sleep(min(MAX_RETRY_DELAY, wait if wait is not None else backoff))
        raise EndpointError(url, detail, status=status, attempts=retries + 1, timed_out=timed_out)


def _first_choice(answer: dict, base_url: str) -> dict:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise EndpointError(f"{base_url}/chat/completions", f"the answer has no choices: {_trim(str(answer))}", status=200)
    return choices[0]


def _transport_problem(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return "connection refused" if "refused" in text.lower() else _trim(text)


def _server_message(response: httpx2.Response) -> str:
    """The error text of an OpenAI-style ``{"error": {"message"}}``, FastAPI ``{"detail"}`` or plain body."""
    try:
        body = response.json()
    except ValueError:
        return _trim(response.text) or response.reason_phrase or "no message"
    if isinstance(body, dict):
        error = body.get("error")
        found = error.get("message") if isinstance(error, dict) else error
        found = found or body.get("detail") or body.get("message") or body
        return _trim(found if isinstance(found, str) else str(found))
    return _trim(str(body))


def _retry_after_seconds(header: str | None) -> float | None:
    """Retry-After is seconds or an HTTP date."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _trim(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= ERROR_MESSAGE_CHARS else text[:ERROR_MESSAGE_CHARS - 1] + "…"
