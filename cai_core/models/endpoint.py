"""Generation on any OpenAI-compatible chat endpoint (vLLM, TGI, ``transformers serve``, llama.cpp server).

A model spec ``http://host:port/v1#model-name`` (or without ``#model-name``: the first model the server
lists) names the endpoint; ``load_model`` hands such specs to ``load_endpoint``.

An API key ($CAI_ENDPOINT_API_KEY, else $OPENAI_API_KEY) is sent only to the hosts named in
$CAI_API_KEY_HOSTS (unset: api.openai.com), and over plain http only to this machine; it is never
put in an error message or a URL.

The ``openai`` SDK carries the requests: its client retries connection errors, timeouts, 408, 409,
429 and 5xx with exponential backoff and honours Retry-After (up to two minutes), over a thread-safe
connection pool. What stays here is ours to state and test: which host gets the key, the settings a
server may refuse, the one-sentence errors that name the URL, status and attempts, and the checks on
answers that are not chat completions (servers differ, so the raw JSON is read rather than trusted).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar
from urllib.parse import urlparse

import httpx2
import openai

from ..errors import CaiError
from .base import Generation, GenerationBackend, GenerationSettings, LogprobsUnavailable, ModelLoadError

API_KEY_VARIABLES = ("CAI_ENDPOINT_API_KEY", "OPENAI_API_KEY")
# A key goes only to the hosts named here (comma- or space-separated). The endpoint is whatever URL
# was typed in, so without this a key would go to any server that was named, and to whoever listens
# on the way when the URL is plain http.
API_KEY_HOSTS_VARIABLE = "CAI_API_KEY_HOSTS"
DEFAULT_API_KEY_HOSTS = ("api.openai.com",)  # where OPENAI_API_KEY is meant to go, when the variable is unset
DEFAULT_CONCURRENCY = 8  # requests in flight, unless the settings say otherwise
# The SDK reads these from the environment and would send them to whatever URL was typed in; like the
# key, they go only to a host the key may go to. OPENAI_CUSTOM_HEADERS holds "Name: value" lines.
ENVIRONMENT_HEADERS = ("OpenAI-Organization", "OpenAI-Project")
CUSTOM_HEADERS_VARIABLE = "OPENAI_CUSTOM_HEADERS"
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # the SDK numbers each attempt of a request in it
ERROR_MESSAGE_CHARS = 200
# What a judge's option token may carry before the letter: "(A", "*A", "\"A".
OPTION_TOKEN_DECORATION = "(*\"'“‘`"

Item = TypeVar("Item")
Result = TypeVar("Result")


class EndpointError(CaiError):
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
    try:
        parsed = urlparse(base_url)
        parsed.port  # noqa: B018 - reading it checks that a port is a number in range
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ModelLoadError(f"endpoint {spec!r} is not a URL like http://host:port/v1 or http://host:port/v1#model-name")
    if parsed.username is not None or parsed.password is not None:
        # The URL is shown on pages, kept in lineage and written to logs; a secret in it would be too.
        raise ModelLoadError(f"the endpoint URL for {parsed.hostname} holds a user name or password; give an API key in "
                             f"{API_KEY_VARIABLES[0]} instead, with the host named in {API_KEY_HOSTS_VARIABLE}")
    return base_url, model.strip() or None


def api_key_hosts() -> tuple[str, ...]:
    """The host names an API key may be sent to: $CAI_API_KEY_HOSTS, else api.openai.com."""
    listed = os.environ.get(API_KEY_HOSTS_VARIABLE)
    if listed is None:
        return DEFAULT_API_KEY_HOSTS
    return tuple(_host_name(name) for name in re.split(r"[\s,]+", listed) if name.strip())


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address, by the name itself: a DNS answer is not trusted for this."""
    host = _host_name(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_key_refusal(base_url: str) -> str | None:
    """Why an API key may not be sent to ``base_url`` (the end of a sentence), or None when it may."""
    parsed = urlparse(base_url)
    host = _host_name(parsed.hostname or "")
    if host not in api_key_hosts():
        unset = "" if API_KEY_HOSTS_VARIABLE in os.environ else f" (unset, so only {', '.join(DEFAULT_API_KEY_HOSTS)})"
        return f"a key goes only to the hosts named in {API_KEY_HOSTS_VARIABLE}{unset} and {host} is not one of them"
    if parsed.scheme != "https" and not is_loopback_host(host):
        return f"a key goes over plain http only to this machine; use https://{parsed.netloc}"
    return None


def _host_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


def load_endpoint(spec: str, *, api_key: str | None = None, concurrency: int = DEFAULT_CONCURRENCY, timeout: float = 120.0,
                  max_retries: int = 4) -> OpenAIEndpointBackend:
    """Connect to the endpoint, checking it answers GET /models; without ``#model``, use the first model listed."""
    base_url, model = parse_endpoint_spec(spec)
    if api_key is None:
        api_key = next((os.environ[name].strip() for name in API_KEY_VARIABLES if os.environ.get(name, "").strip()), None)
    backend = OpenAIEndpointBackend(base_url, model or "", api_key=api_key, concurrency=concurrency, timeout=timeout,
                                    max_retries=max_retries)
    try:  # no retries: whoever picked the endpoint is waiting to hear whether it is there
        listing = backend.answer("/models", lambda client: client.with_options(max_retries=0).models.with_raw_response
                                 .list(extra_headers=backend.request_headers))
    except EndpointError as error:
        if error.status is None:
            raise ModelLoadError(f"could not reach the endpoint {base_url} ({error.detail}); is the server running?") from None
        if not (model and error.status == 404):  # a server without /models still serves a named model
            raise ModelLoadError(f"the endpoint {base_url} answered GET /models with HTTP {error.status}: {error.detail}") from None
        listing = {}
    if not model:
        entries = listing.get("data") if isinstance(listing, dict) else None
        listed = [entry["id"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("id"), str)
                  and entry["id"].strip()] if isinstance(entries, list) else []
        if not listed:
            raise ModelLoadError(f"the endpoint {base_url} lists no models; name one as {base_url}#model-name")
        backend.model = listed[0]
    return backend


def endpoint_setting_notes(settings: GenerationSettings) -> list[str]:
    """What an endpoint does with the settings a local model uses otherwise, one line each, said
    when a run starts."""
    notes = [f"the endpoint gets {settings.concurrency or DEFAULT_CONCURRENCY} requests at once (concurrency) and "
             "batches them itself, "
             f"so batch_size {settings.batch_size} is not used"]
    if settings.repetition_penalty != 1.0:
        notes.append(f"repetition_penalty {settings.repetition_penalty:g} is sent as an extra field, which vLLM and "
                     "TGI accept; a server that refuses it gets the requests without it")
    return notes


class OpenAIEndpointBackend(GenerationBackend):
    """Chat completions over HTTP: one request per conversation, ``concurrency`` of them in flight."""

    device = "endpoint"
    reports_partial_text = False

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 timeout: float = 120.0, max_retries: int = 4):
        self.base_url, self.model = base_url.rstrip("/"), model
        self.concurrency, self.timeout, self.max_retries = max(1, concurrency), timeout, max(0, max_retries)
        # Why a key that was given is not sent here, for the error a server that wants one will answer.
        self._key_withheld = api_key_refusal(self.base_url) if api_key else None
        self._secret = api_key if api_key and not self._key_withheld else None
        # Named explicitly either way, so the SDK's own fallbacks ($OPENAI_API_KEY, an Authorization
        # line in $OPENAI_CUSTOM_HEADERS) never decide what is sent.
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {
            "Authorization": openai.omit, **dict.fromkeys(environment_header_names(), openai.omit)}
        # The SDK refuses a request without Authorization unless that request itself omits it.
        self.request_headers = {} if self._secret else {"Authorization": openai.omit}
        self._sends_repetition_penalty = True  # until the server refuses the field
        self._client = openai.OpenAI(base_url=self.base_url, api_key=self._secret or "not sent", timeout=timeout,
                                     max_retries=self.max_retries, default_headers=headers)

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

            def create(client: openai.OpenAI):
                # Not in the OpenAI API, but vLLM and TGI take it as an extra field.
                extra = {"repetition_penalty": settings.repetition_penalty} \
                    if settings.repetition_penalty != 1.0 and self._sends_repetition_penalty else None
                return client.chat.completions.with_raw_response.create(
                    model=self.model, messages=conversation, max_tokens=settings.max_new_tokens,
                    temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed,
                    extra_body=extra, extra_headers=self.request_headers)

            sent_penalty = settings.repetition_penalty != 1.0 and self._sends_repetition_penalty
            try:
                answer = self.answer("/chat/completions", create)
            except EndpointError as error:
                # A strict server (``transformers serve`` among them) refuses unknown fields with
                # 400/422: send the rest without it from now on, as setting_notes said it would.
                if not sent_penalty or error.status not in (400, 422) or "repetition" not in error.detail.lower():
                    raise
                self._sends_repetition_penalty = False
                answer = self.answer("/chat/completions", create)
            url = f"{self.base_url}/chat/completions"
            usage = answer.get("usage")
            if usage is not None and not isinstance(usage, dict):
                raise _malformed(url, f"its usage is not an object: {_trim(str(usage))}")
            return Generation(text=_message_text(_first_choice(answer, self.base_url), url).strip(),
                              prompt_tokens=_token_count(usage, "prompt_tokens", url),
                              completion_tokens=_token_count(usage, "completion_tokens", url),
                              seconds=time.perf_counter() - began)

        return self._map(complete, conversations, settings.concurrency)

    def setting_notes(self, settings: GenerationSettings) -> list[str]:
        return endpoint_setting_notes(settings)

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
                answer = self.answer("/chat/completions", lambda client: client.chat.completions.with_raw_response.create(
                    model=self.model, messages=conversation, max_tokens=1, temperature=0.0, logprobs=True,
                    top_logprobs=20, extra_headers=self.request_headers))
            except EndpointError as error:  # a strict server may refuse the logprobs fields outright
                if error.status in (400, 422) and "logprob" in error.detail.lower():
                    raise self._no_logprobs() from None
                raise
            url = f"{self.base_url}/chat/completions"
            logprobs = _first_choice(answer, self.base_url).get("logprobs") or {}
            tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
            if tokens is not None and not isinstance(tokens, list):
                raise _malformed(url, f"its logprobs content is not a list: {_trim(str(tokens))}")
            if not tokens or not isinstance(tokens[0], dict) or "logprob" not in tokens[0]:
                raise self._no_logprobs()
            alternatives = tokens[0].get("top_logprobs") or []
            if not isinstance(alternatives, list):
                raise _malformed(url, f"its top_logprobs is not a list: {_trim(str(alternatives))}")
            scores = dict.fromkeys(options, float("-inf"))
            for candidate in [tokens[0], *alternatives]:
                if not isinstance(candidate, dict):
                    raise _malformed(url, f"a top_logprobs entry is not an object: {_trim(str(candidate))}")
                text = str(candidate.get("token", "")).strip().lstrip(OPTION_TOKEN_DECORATION).strip()
                if text in scores and candidate.get("logprob") is not None:
                    scores[text] = max(scores[text], _logprob(candidate["logprob"], url))
            return scores

        return self._map(score, conversations)

    def _no_logprobs(self) -> LogprobsUnavailable:
        return LogprobsUnavailable(
            f"the endpoint {self.base_url} returned no token log-probabilities for {self.model}; the judge needs "
            "an endpoint that supports `logprobs`/`top_logprobs` on chat completions"
        )

    def _map(self, function: Callable[[Item], Result], items: Sequence[Item],
             concurrency: int | None = None) -> list[Result]:
        """``function`` over ``items`` with up to ``concurrency`` (default: the backend's) in flight,
        results in input order."""
        if len(items) <= 1:
            return [function(item) for item in items]
        workers = min(concurrency or self.concurrency, len(items))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cai-endpoint")
        try:
            return list(pool.map(function, items))
        finally:  # on a failure, requests not yet sent are dropped rather than waited for
            pool.shutdown(wait=True, cancel_futures=True)

    def answer(self, path: str, call: Callable[[openai.OpenAI], object]) -> dict:
        """The JSON object the endpoint answered to ``call(client)``, an SDK call ``with_raw_response``
        on ``path``, after the SDK's retries; a failure is one EndpointError sentence."""
        url = f"{self.base_url}{path}"
        try:
            response: httpx2.Response = call(self._client).http_response
        except openai.APIStatusError as error:
            detail = self._redact(_server_message(error.response))
            if error.status_code in (401, 403) and self._key_withheld:
                detail += f"; an API key is set but was not sent, because {self._key_withheld}"
            raise EndpointError(url, detail, status=error.status_code, attempts=_attempts(error.response.request)) from None
        except openai.APITimeoutError as error:
            raise EndpointError(url, f"no answer within the {self.timeout:g} s timeout", attempts=_attempts(error.request),
                                timed_out=True) from None
        except openai.APIConnectionError as error:
            raise EndpointError(url, _transport_problem(error.__cause__ or error), attempts=_attempts(error.request)) from None
        try:
            body = response.json()
        except ValueError:
            raise EndpointError(url, f"the body is not JSON: {self._redact(_trim(response.text))}",
                                status=response.status_code) from None
        if not isinstance(body, dict):
            raise _malformed(url, f"it is not a JSON object: {self._redact(_trim(response.text))}")
        return body

    def _redact(self, text: str) -> str:
        """A server's words with the key taken out: some echo the key they were sent."""
        return text.replace(self._secret, "[API key]") if self._secret else text


def environment_header_names() -> list[str]:
    """The headers the SDK would take from the environment: organization, project and $OPENAI_CUSTOM_HEADERS."""
    custom = os.environ.get(CUSTOM_HEADERS_VARIABLE, "").splitlines()
    return [*ENVIRONMENT_HEADERS, *(line.partition(":")[0].strip() for line in custom if line.partition(":")[0].strip())]


def _attempts(request: httpx2.Request) -> int:
    """How many times the SDK sent the request that failed, from the number it puts on each attempt."""
    count = request.headers.get(RETRY_COUNT_HEADER, "0")
    return int(count) + 1 if count.isdigit() else 1


def _malformed(url: str, what: str) -> EndpointError:
    return EndpointError(url, f"the answer is not a chat completion: {what}", status=200)


def _first_choice(answer: dict, base_url: str) -> dict:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise EndpointError(f"{base_url}/chat/completions", f"the answer has no choices: {_trim(str(answer))}", status=200)
    return choices[0]


def _message_text(choice: dict, url: str) -> str:
    """The text of a choice's message: a string, or (as some servers send it) a list of parts such as
    ``{"type": "text", "text": ...}``, whose text parts are joined; other parts (images) are left out."""
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _malformed(url, f"its first choice has no message: {_trim(str(choice))}")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise _malformed(url, f"its content is neither text nor a list of parts: {_trim(str(content))}")
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif not isinstance(part, dict):
            raise _malformed(url, f"a part of its content is not an object: {_trim(str(part))}")
    if content and not texts:
        raise _malformed(url, f"its content has no text part: {_trim(str(content))}")
    return "".join(texts)


def _token_count(usage: dict | None, name: str, url: str) -> int:
    """A usage count as a whole number; 0 when the server does not say."""
    value = (usage or {}).get(name)
    if value is None:
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or value != int(value):
        raise _malformed(url, f"its usage.{name} is {_trim(repr(value))}, not a whole number")
    return int(value)


def _logprob(value, url: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or math.isnan(number):
        raise _malformed(url, f"a logprob is {_trim(repr(value))}, not a number")
    return number


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


def _trim(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= ERROR_MESSAGE_CHARS else text[:ERROR_MESSAGE_CHARS - 1] + "…"
