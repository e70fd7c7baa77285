"""The local backend: a Hugging Face transformers model with our own batched decode loop.

Batched, left-padded generation with the chat template; keys and values of finished
conversations are kept so a stage that continues one (critique after answer, revision after
critique, N samples of one prompt) reads only its new tokens. torch and transformers are
imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator, Sequence

from .base import Generation, GenerationBackend, GenerationSettings

if TYPE_CHECKING:  # torch and transformers are imported lazily: the CLI's help must be instant.
    import torch

STAT_NAMES = ("prefill_seconds", "prefill_tokens", "prefill_tokens_reused", "decode_seconds", "decode_steps",
              "decode_tokens", "kv_peak_bytes")
# A kept prefix is used when it covers at least this many tokens or half the input: a shared
# chat header alone saves little and would cost the batched prefill of fresh prompts.
MIN_REUSED_TOKENS = 64
# Partial text is decoded every few tokens, not every token: decoding costs time too.
PARTIAL_TEXT_EVERY = 4


@dataclass
class _Encoded:
    ids: list[int]
    warning: str | None = None


@dataclass
class TransformersBackend(GenerationBackend):
    """Local Hugging Face transformers model: batched, left-padded generation with the chat template."""

    model: object
    tokenizer: object
    model_id: str
    device: str = "cpu"
    max_context: int = 2048
    # One generation at a time per loaded model: a model is shared by every page and thread of a
    # process, and torch modules are not re-entrant.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    reports_partial_text: ClassVar[bool] = True
    # Where generation time goes (prefill vs token-by-token decoding), for benchmarks and tuning.
    stats: dict = field(default_factory=lambda: dict.fromkeys(STAT_NAMES, 0))
    # A stage that continues a conversation (critique after answer, revision after critique) or
    # N samples of one prompt start from keys and values the model already computed, instead
    # of reading the whole conversation again. Off gives the plain prefill, for comparison.
    # Kept entries live on the model's device, at most prefix_cache_bytes of them.
    reuse_prefix: bool = True
    prefix_cache_bytes: int = 512 * 2**20
    min_reused_tokens: int = MIN_REUSED_TOKENS
    _prefixes: "PrefixCache | None" = field(default=None, repr=False)
    _plain_cache: bool | None = field(default=None, repr=False)

    @property
    def prefixes(self) -> "PrefixCache":
        if self._prefixes is None or self._prefixes.max_bytes != self.prefix_cache_bytes:
            self._prefixes = PrefixCache(self.prefix_cache_bytes)
        return self._prefixes

    def forget_prefixes(self) -> None:
        """Drop every kept prefix (its memory is freed; later calls prefill in full again)."""
        with self._lock:
            self._prefixes = None

    def _encode(self, conversation: list[dict], max_new_tokens: int, answer_prefix: str = "") -> _Encoded:
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True) + answer_prefix
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        budget = self.max_context - max_new_tokens
        if budget < 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for the prompt in this model's "
                f"{self.max_context}-token context"
            )
        if len(ids) > budget:
            cut = len(ids) - budget
            return _Encoded(
                ids[cut:],
                f"The input was {len(ids)} tokens, more than the {budget} that fit beside "
                f"{max_new_tokens} new tokens in the {self.max_context}-token context; the first {cut} tokens were cut.",
            )
        return _Encoded(ids)

    def _batch_tensors(self, encoded: list[_Encoded]) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """Left-padded input ids, attention mask and each row's own positions (from its mask)."""
        import torch

        width = max(len(e.ids) for e in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, item in enumerate(encoded):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(item.ids):] = torch.tensor(item.ids)
            attention[row, width - len(item.ids):] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        return input_ids, attention, (attention.cumsum(-1) - 1).clamp(min=0)

    def generate(self, conversations: list[list[dict]], settings: GenerationSettings,
                 on_text: Callable[[dict[int, str]], None] | None = None) -> list[Generation]:
        """``on_text``, when given, is called every few tokens with {conversation index: text so far}."""
        import torch

        encoded = [self._encode(c, settings.max_new_tokens) for c in conversations]
        results: list[Generation | None] = [None] * len(encoded)
        with self._lock, torch.inference_mode():
            generator = torch.Generator(device=self.device).manual_seed(settings.seed)
            for chunk in _chunks_by_length(encoded, settings.batch_size):
                began = time.perf_counter()
                def report(rows: dict[int, list[int]], chunk=chunk) -> None:
                    on_text({chunk[row]: self.tokenizer.decode(ids, skip_special_tokens=True) for row, ids in rows.items()})
                outputs = self._decode_batch([encoded[i] for i in chunk], settings, generator,
                                             report if on_text is not None else None)
                seconds = time.perf_counter() - began
                for index, new_tokens in zip(chunk, outputs):
                    results[index] = Generation(
                        text=self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip(),
                        prompt_tokens=len(encoded[index].ids),
                        completion_tokens=len(new_tokens),
                        seconds=seconds,
                        warning=encoded[index].warning,
                        token_ids=new_tokens,
                    )
        return results  # type: ignore[return-value]

    def _reusing(self) -> bool:
        """Reuse needs a cache of plain per-layer key/value tensors (no sliding window, no quantisation)."""
        if not self.reuse_prefix:
            return False
        if self._plain_cache is None:
            try:
                from transformers import DynamicCache
                from transformers.cache_utils import DynamicLayer

                layers = DynamicCache(config=self.model.config).layers
                self._plain_cache = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
            except Exception:  # noqa: BLE001 - an unknown cache layout simply gets no reuse
                self._plain_cache = False
        return self._plain_cache

    def _prefill(self, rows: list[_Encoded], cache_argument: str):
        """The batch's KV cache, attention mask (left padding), each row's next-token logits, and
        for each row the kept entry it continues from (None when it was read in full).

        With reuse, identical inputs are read once, and rows that continue a kept conversation
        read only their new tokens on top of its keys and values (see ``_extend``); the rest are
        read together, left-padded, as before. Reused keys and values were computed along
        another path (in another batch, token by token), so logits agree to float rounding, not
        bit for bit: a greedy token can flip only where the top two logits nearly tie.
        """
        reusing = self._reusing()
        distinct: dict[tuple[int, ...], int] = {}
        source = [distinct.setdefault(tuple(row.ids), len(distinct)) for row in rows] if reusing else list(range(len(rows)))
        inputs = list(distinct) if reusing else [tuple(row.ids) for row in rows]
        parts: list[tuple | None] = [None] * len(inputs)
        continued: list[tuple | None] = [None] * len(inputs)
        fresh, continuing = [], []
        for index, ids in enumerate(inputs):
            found = self.prefixes.longest(ids) if reusing else None
            reused = min(found[1], len(ids) - 1) if found else 0
            if _worth_reusing(reused, len(ids), self.min_reused_tokens):
                continuing.append((found[0], reused, ids))
                continued[index] = found[0]
            else:
                fresh.append(index)
        if continuing:
            extended = iter(self._extend([(self.prefixes.get(tokens), shared, ids) for tokens, shared, ids in continuing],
                                         cache_argument))
            for index in range(len(inputs)):
                if continued[index] is not None:
                    parts[index] = next(extended)
        batch_cache = None
        if fresh:
            input_ids, attention, positions = self._batch_tensors([_Encoded(list(inputs[i])) for i in fresh])
            output = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                                use_cache=True, logits_to_keep=1)
            self.stats["prefill_tokens"] += int(input_ids.numel())
            batch_cache, logits = _returned_cache(output), output.logits[:, -1, :]
            if len(fresh) == len(rows):  # nothing reused or shared: the batch is ready as it is
                self._note_kv_bytes(batch_cache)
                return batch_cache, attention, logits, [None] * len(rows)
            for slot, index in enumerate(fresh):
                parts[index] = ([layer.keys[slot] for layer in batch_cache.layers],
                                [layer.values[slot] for layer in batch_cache.layers], attention[slot], logits[slot])
        cache, attention, logits = _stack_left_padded([parts[i] for i in source])
        self._note_kv_bytes(cache)
        return cache, attention, logits, [continued[i] for i in source]

    def _extend(self, continuing: list[tuple[tuple[list, list], int, Sequence[int]]], cache_argument: str) -> list[tuple]:
        """Read each row's new tokens on top of the keys and values of its shared prefix.

        ``continuing`` holds ((keys per layer, values per layer) of a prefix without padding, tokens
        the row shares with it, the row's ids), and each row gives back (keys, values, mask, logits). The rows are read
        together as one block as wide as the longest new part; a row with a shorter new part
        reads a few of its kept tokens again rather than leaving a gap in the middle of its cache,
        so every row stays left-padded (and one forward pass replaces one per row, whose fixed
        cost dominates short turns on a CPU).
        """
        import torch
        from transformers import DynamicCache

        width = max(len(ids) - shared for _, shared, ids in continuing)
        # Row i keeps its first cached[i] tokens from the kept entry and reads the rest (at most width).
        cached = [max(0, len(ids) - width) for _, _, ids in continuing]
        kept_width = max(cached)
        entries = [entry for entry, _, _ in continuing]
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(continuing), width), pad, dtype=torch.long)
        attention = torch.zeros((len(continuing), kept_width + width), dtype=torch.long)
        for row, ((_, _, ids), keep) in enumerate(zip(continuing, cached)):
            read = ids[keep:]
            input_ids[row, width - len(read):] = torch.tensor(read)
            attention[row, kept_width - keep:kept_width] = 1
            attention[row, kept_width + width - len(read):] = 1
        layers = []
        for layer in range(len(entries[0][0])):
            sample_keys, sample_values = entries[0][0][layer], entries[0][1][layer]
            keys = sample_keys.new_zeros((len(continuing), sample_keys.shape[0], kept_width, sample_keys.shape[-1]))
            values = sample_values.new_zeros((len(continuing), sample_values.shape[0], kept_width, sample_values.shape[-1]))
            for row, ((entry_keys, entry_values), keep) in enumerate(zip(entries, cached)):
                if keep:
                    keys[row, :, kept_width - keep:] = entry_keys[layer][:, :keep]
                    values[row, :, kept_width - keep:] = entry_values[layer][:, :keep]
            layers.append((keys, values))
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)[:, kept_width:]
        output = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                            use_cache=True, logits_to_keep=1, **{cache_argument: DynamicCache(layers)})
        cache = _returned_cache(output)
        self.stats["prefill_tokens"] += int(input_ids.numel())
        self.stats["prefill_tokens_reused"] += sum(cached)
        return [([layer.keys[row] for layer in cache.layers], [layer.values[row] for layer in cache.layers],
                 attention[row], output.logits[row, -1, :]) for row in range(len(continuing))]

    def _keep_prefix(self, row: _Encoded, generated: list[int], cache, attention, slot: int,
                     continued_from: tuple[int, ...] | None) -> None:
        """Keep a finished row's keys and values, without its padding, under the tokens they encode.

        The entry the row continued from goes: the new one holds every token the row shared with
        it, and what is left of the old one (its answer as sampled, before the text was
        re-rendered) is not read again.
        """
        mask = attention[slot].bool()
        tokens = tuple((row.ids + generated)[:int(mask.sum())])
        self.prefixes.put(tokens, *_row_without_padding(cache, slot, mask), replaces=continued_from)

    def _note_kv_bytes(self, cache) -> None:
        held = sum(_tensor_bytes(layer.keys) + _tensor_bytes(layer.values) for layer in getattr(cache, "layers", []))
        held += self._prefixes.bytes if self._prefixes is not None else 0
        self.stats["kv_peak_bytes"] = max(self.stats.get("kv_peak_bytes", 0), held)

    def _decode_batch(self, rows: list[_Encoded], settings: GenerationSettings, generator,
                      report: Callable[[dict[int, list[int]]], None] | None = None) -> list[list[int]]:
        """Prefill a left-padded batch, then decode token by token, dropping each row from the
        batch (and from the KV cache) as soon as it ends.

        ``model.generate`` keeps computing finished rows until the longest one ends; with answers
        of very different lengths that is a third of the work wasted. Each row's positions come
        from its own attention mask, so a row's tokens do not depend on what it is batched with.
        """
        import torch

        began = time.perf_counter()
        cache_argument = _cache_argument_name(self.model)
        cache, attention, logits, continued_from = self._prefill(rows, cache_argument)
        self.stats["prefill_seconds"] += time.perf_counter() - began
        began = time.perf_counter()
        next_position = attention.sum(-1)
        keep_prefixes = self._reusing()
        stops = torch.tensor(sorted(self._eos_ids()), device=self.device)
        active = torch.arange(len(rows), device=self.device)  # batch slot -> row index
        generated: list[list[int]] = [[] for _ in rows]
        penalise = settings.repetition_penalty > 1.0
        used = torch.zeros_like(logits, dtype=torch.bool) if penalise else None  # [active rows, vocab]
        for step in range(settings.max_new_tokens):
            if penalise:
                logits = torch.where(used, torch.where(logits > 0, logits / settings.repetition_penalty,
                                                       logits * settings.repetition_penalty), logits)
            tokens = _pick_tokens(logits, settings, generator)
            if penalise:
                used[torch.arange(len(tokens), device=self.device), tokens] = True
            finished = torch.isin(tokens, stops)
            for row, token, done in zip(active.tolist(), tokens.tolist(), finished.tolist()):
                if not done:
                    generated[row].append(token)
            if step == settings.max_new_tokens - 1:
                break
            if bool(finished.any()):
                if keep_prefixes:  # a finished row's cache would be thrown away: keep it for the next turn
                    for slot in finished.nonzero().squeeze(-1).tolist():
                        row = int(active[slot])
                        self._keep_prefix(rows[row], generated[row], cache, attention, slot, continued_from[row])
                keep = (~finished).nonzero().squeeze(-1)
                if keep.numel() == 0:
                    active = active[keep]  # every row is kept already
                    break
                cache.batch_select_indices(keep)
                active, tokens, attention, next_position = active[keep], tokens[keep], attention[keep], next_position[keep]
                if penalise:
                    used = used[keep]
            attention = torch.cat([attention, attention.new_ones((attention.shape[0], 1))], dim=-1)
            output = self.model(input_ids=tokens[:, None], attention_mask=attention, position_ids=next_position[:, None],
                                use_cache=True, **{cache_argument: cache})
            cache, logits = _returned_cache(output), output.logits[:, -1, :]
            next_position = next_position + 1
            self.stats["decode_steps"] += 1
            if report is not None and step % PARTIAL_TEXT_EVERY == 0:
                report({row: generated[row] for row in active.tolist()})
            self._note_kv_bytes(cache)
        if keep_prefixes:  # rows still in the batch at the last step, finished then or not
            for slot, row in enumerate(active.tolist()):
                self._keep_prefix(rows[row], generated[row], cache, attention, slot, continued_from[row])
        self.stats["decode_seconds"] += time.perf_counter() - began
        self.stats["decode_tokens"] += sum(len(tokens) for tokens in generated)
        return generated

    def option_logprobs(self, conversations: list[list[dict]], options: Sequence[str],
                        answer_prefix: str = "", batch_size: int = 16) -> list[dict[str, float]]:
        """Read each option's next-token log-probability from one batched forward pass.

        Questions that begin alike (the judge's two orders of one pair share everything up to the
        first option; an llm-rubric check's two framings share the answer) read that beginning
        once, when reuse is on; see ``_shared_logits``.
        """
        import torch

        option_ids = self._option_token_ids(options, answer_prefix)
        encoded = [self._encode(c, max_new_tokens=1, answer_prefix=answer_prefix) for c in conversations]
        results: list[dict[str, float]] = [{} for _ in encoded]
        sharing = self._reusing()
        groups = _shared_prefix_groups([e.ids for e in encoded], self.min_reused_tokens) if sharing \
            else [(0, [i]) for i in range(len(encoded))]
        with self._lock, torch.inference_mode():
            for chunk in _chunks_of_groups(groups, [len(e.ids) for e in encoded], batch_size):
                began = time.perf_counter()
                rows, logits = self._shared_logits(chunk, encoded)
                logprobs = torch.log_softmax(logits.float(), dim=-1)[:, option_ids].tolist()
                self.stats["prefill_seconds"] += time.perf_counter() - began
                for index, row in zip(rows, logprobs):
                    results[index] = dict(zip(options, row))
        return results

    def _shared_logits(self, chunk: list[tuple[int, list[int]]], encoded: list[_Encoded]):
        """The last position's logits of every question in ``chunk`` (groups of (shared tokens, indices)).

        A group's shared tokens are read once, in one left-padded pass over every group's prefix;
        each question then reads only its own rest on top of its group's keys and values (as a
        continued conversation does, ``_extend``). Questions in no group are read in full. The
        logits agree with a full read to float rounding.
        """
        import torch

        cache_argument = _cache_argument_name(self.model)
        alone = [members[0] for shared, members in chunk if not shared]
        grouped = [(shared, members) for shared, members in chunk if shared]
        rows, logits = [], []
        if alone:
            input_ids, attention, positions = self._batch_tensors([encoded[i] for i in alone])
            output = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                                use_cache=False, logits_to_keep=1)
            self.stats["prefill_tokens"] += int(input_ids.numel())
            rows += alone
            logits.append(output.logits[:, -1, :])
        if grouped:
            prefixes = [_Encoded(encoded[members[0]].ids[:shared]) for shared, members in grouped]
            input_ids, attention, positions = self._batch_tensors(prefixes)
            output = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                                use_cache=True, logits_to_keep=1)
            self.stats["prefill_tokens"] += int(input_ids.numel())
            cache = _returned_cache(output)
            continuing = []
            for slot, (shared, members) in enumerate(grouped):
                entry = _row_without_padding(cache, slot, attention[slot].bool())
                continuing += [(entry, shared, encoded[index].ids) for index in members]
                rows += members
            logits.append(torch.stack([row_logits for *_, row_logits in self._extend(continuing, cache_argument)]))
        return rows, torch.cat(logits)

    def _option_token_ids(self, options: Sequence[str], answer_prefix: str) -> list[int]:
        """The first token each option adds after the prefix, as the tokenizer itself splits it."""
        prefix_ids = self.tokenizer(answer_prefix, add_special_tokens=False)["input_ids"] if answer_prefix else []
        ids = []
        for option in options:
            joined = self.tokenizer(answer_prefix + option, add_special_tokens=False)["input_ids"]
            if joined[:len(prefix_ids)] == prefix_ids and len(joined) > len(prefix_ids):
                ids.append(joined[len(prefix_ids)])
            else:  # the option merged with the prefix's last token; score the option alone
                ids.append(self.tokenizer(option, add_special_tokens=False)["input_ids"][0])
        if len(set(ids)) != len(ids):
            raise ValueError(f"the options {list(options)} do not start with distinct tokens for {self.model_id}'s tokenizer")
        return ids

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def stream(self, conversation: list[dict], settings: GenerationSettings) -> Iterator[str]:
        """Yield the answer in pieces as it is written (the same tokens ``generate`` would give)."""
        import queue

        pieces: queue.Queue = queue.Queue()
        done = object()
        sent = ""

        def on_text(texts: dict[int, str]) -> None:
            if not texts[0].endswith("\ufffd"):  # a character whose bytes are not all decoded yet
                pieces.put(texts[0])

        def work() -> None:
            try:
                pieces.put(("final", self.generate([conversation], settings, on_text=on_text)[0].text))
            except BaseException as error:  # surfaced in the caller's thread below
                pieces.put(("error", error))
            finally:
                pieces.put(done)

        threading.Thread(target=work, daemon=True).start()
        while (item := pieces.get()) is not done:
            if isinstance(item, tuple):
                kind, value = item
                if kind == "error":
                    raise value
                text = value
            else:
                text = item.strip()
            if text.startswith(sent) and len(text) > len(sent):
                yield text[len(sent):]
                sent = text


def _tensor_bytes(tensor) -> int:
    return tensor.numel() * tensor.element_size() if tensor is not None else 0


def _stack_left_padded(parts: list[tuple]):
    """One batch cache from per-row (keys per layer, values per layer, mask, logits), left-padded."""
    import torch
    from transformers import DynamicCache

    width = max(len(mask) for _, _, mask, _ in parts)
    attention = parts[0][2].new_zeros((len(parts), width))
    layers = []
    for layer in range(len(parts[0][0])):
        sample = parts[0][0][layer]
        keys = sample.new_zeros((len(parts), sample.shape[0], width, sample.shape[-1]))
        values = parts[0][1][layer].new_zeros((len(parts), parts[0][1][layer].shape[0], width, parts[0][1][layer].shape[-1]))
        for row, (row_keys, row_values, mask, _) in enumerate(parts):
            keys[row, :, width - len(mask):] = row_keys[layer]
            values[row, :, width - len(mask):] = row_values[layer]
        layers.append((keys, values))
    for row, (_, _, mask, _) in enumerate(parts):
        attention[row, width - len(mask):] = mask
    return DynamicCache(layers), attention, torch.stack([logits for *_, logits in parts])


class PrefixCache:
    """Keys and values of recently finished conversations, keyed by the token ids they encode.

    Least recently used entries go first once ``max_bytes`` is exceeded; an entry that a newer
    one extends or continues from is dropped at once.
    """

    def __init__(self, max_bytes: int):
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self.bytes = 0
        self.evicted = 0
        self._entries: "OrderedDict[tuple[int, ...], tuple[list, list, int]]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, ids: tuple[int, ...]) -> tuple[tuple[int, ...], int] | None:
        """The kept entry sharing the longest token prefix with ``ids``, and that prefix's length."""
        best, best_length = None, 0
        for tokens in self._entries:
            length = _common_prefix_length(tokens, ids)
            if length > best_length:
                best, best_length = tokens, length
        if best is None:
            return None
        self._entries.move_to_end(best)
        return best, best_length

    def get(self, tokens: tuple[int, ...]) -> tuple[list, list]:
        keys, values, _ = self._entries[tokens]
        return keys, values

    def put(self, tokens: tuple[int, ...], keys: list, values: list, replaces: tuple[int, ...] | None = None) -> None:
        if replaces is not None and replaces != tokens and replaces in self._entries:
            self._drop(replaces)
        size = sum(_tensor_bytes(t) for t in (*keys, *values))
        if size > self.max_bytes or not tokens:
            return
        for old in [t for t in self._entries if len(t) <= len(tokens) and tokens[:len(t)] == t]:
            self._drop(old)
        self._entries[tokens] = (keys, values, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
            self.evicted += 1

    def _drop(self, tokens: tuple[int, ...]) -> None:
        self.bytes -= self._entries.pop(tokens)[2]


def _common_prefix_length(first: tuple, second: tuple) -> int:
    """Binary search over slice comparisons: the comparisons run in C, so long inputs stay cheap."""
    low, high = 0, min(len(first), len(second))
    if high == 0 or first[0] != second[0]:
        return 0
    while low < high:
        middle = (low + high + 1) // 2
        if first[:middle] == second[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _worth_reusing(shared: int, length: int, min_tokens: int) -> bool:
    """A shared beginning is worth reading once when it is ``min_tokens`` long or half the input:
    a shared chat header alone saves little and would cost a batched read of its own."""
    return shared >= min_tokens or (shared > 0 and 2 * shared >= length)


def _row_without_padding(cache, slot: int, mask) -> tuple[list, list]:
    """One row's keys and values per layer, only at the positions its attention mask keeps."""
    return ([layer.keys[slot][:, mask] for layer in cache.layers],
            [layer.values[slot][:, mask] for layer in cache.layers])


def _shared_prefix_groups(inputs: list[Sequence[int]], min_tokens: int) -> list[tuple[int, list[int]]]:
    """Inputs that begin alike, as (tokens they share, their indices); a lone input shares 0.

    Sorted token sequences put inputs with long common beginnings side by side. A group takes
    its next neighbour only while their common beginning stays as long as the group's, so the
    judge's two orders of one pair (which share everything up to the first option) are not
    merged with another pair's questions down to the instructions they all begin with. A
    beginning counts when it is worth reading once: ``min_tokens`` long or half the input.
    """
    order = sorted(range(len(inputs)), key=lambda i: tuple(inputs[i]))
    groups: list[tuple[int, list[int]]] = []
    for index in order:
        if groups:
            shared, members = groups[-1]
            ids = tuple(inputs[index])
            common = min(_common_prefix_length(tuple(inputs[members[0]]), ids), len(ids) - 1,
                         *(len(inputs[m]) - 1 for m in members))
            if _worth_reusing(common, len(ids), min_tokens) and (len(members) == 1 or common >= shared):
                groups[-1] = (common if len(members) == 1 else shared, members + [index])
                continue
        groups.append((0, [index]))
    return groups


def _chunks_of_groups(groups: list[tuple[int, list[int]]], lengths: list[int],
                      size: int) -> Iterator[list[tuple[int, list[int]]]]:
    """Groups packed into chunks of at most ``size`` inputs, shortest first (little padding); a
    group larger than a chunk is split, each part still sharing its beginning."""
    parts = []
    for shared, members in groups:
        for start in range(0, len(members), size):
            part = members[start:start + size]
            parts.append((shared if len(part) > 1 else 0, part))
    parts.sort(key=lambda part: max(lengths[i] for i in part[1]))
    chunk: list[tuple[int, list[int]]] = []
    for part in parts:
        if chunk and sum(len(members) for _, members in chunk) + len(part[1]) > size:
            yield chunk
            chunk = []
        chunk.append(part)
    if chunk:
        yield chunk


def _chunks_by_length(encoded: list[_Encoded], size: int) -> Iterator[list[int]]:
    """Indices in chunks of ``size``, shortest inputs first: similar lengths batch with little padding."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    for start in range(0, len(order), size):
        yield order[start:start + size]


def _cache_argument_name(model) -> str:
    """transformers 5.24 renamed the forward argument ``past_key_values`` to ``cache``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _returned_cache(output):
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")


# Nucleus sampling looks for the nucleus among this many most likely tokens first. Sorting the
# whole vocabulary (49k tokens for SmolLM2) and drawing from it took a quarter of a sampled
# generation's time on a CPU (py-spy, docs/benchmarks.md); the nucleus is almost always far smaller.
NUCLEUS_CANDIDATES = 512


def _pick_tokens(logits: "torch.Tensor", settings: GenerationSettings, generator: "torch.Generator") -> "torch.Tensor":
    """Greedy argmax, or nucleus (top-p) sampling at the given temperature."""
    import torch

    if settings.greedy:
        return logits.argmax(dim=-1)
    probabilities = torch.softmax(logits.float() / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        return _nucleus_tokens(probabilities, settings.top_p, generator)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


def _nucleus_tokens(probabilities: "torch.Tensor", top_p: float, generator: "torch.Generator",
                    candidates: int = NUCLEUS_CANDIDATES) -> "torch.Tensor":
    """A token per row from the smallest set of most likely tokens whose mass reaches ``top_p``.

    The set is found among the ``candidates`` most likely tokens (a partial sort), which is exact
    whenever their mass passes ``top_p``: every token after them would be cut anyway. A row whose
    candidates fall short (a very flat distribution) is drawn from its whole sorted vocabulary.
    """
    candidates = min(candidates, probabilities.shape[-1])
    top_probs, top_ids = probabilities.topk(candidates, dim=-1)
    tokens = _draw_nucleus(top_probs, top_ids, top_p, generator)
    short = (top_probs.sum(dim=-1) <= top_p).nonzero().squeeze(-1)
    if candidates < probabilities.shape[-1] and short.numel():
        sorted_probs, sorted_ids = probabilities[short].sort(dim=-1, descending=True)
        tokens[short] = _draw_nucleus(sorted_probs, sorted_ids, top_p, generator)
    return tokens


def _draw_nucleus(sorted_probs: "torch.Tensor", sorted_ids: "torch.Tensor", top_p: float,
                  generator: "torch.Generator") -> "torch.Tensor":
    import torch

    # Keep the smallest prefix whose mass reaches top_p (always at least the first token).
    outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p
    choice = torch.multinomial(sorted_probs.masked_fill(outside, 0.0), 1, generator=generator)
    return sorted_ids.gather(-1, choice).squeeze(-1)


def pick_device() -> tuple[str, "torch.dtype"]:
    """CUDA with bf16 when present (halves memory, native on recent GPUs), else CPU float32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    return "cpu", torch.float32
