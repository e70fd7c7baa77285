"""Nucleus (top-p) sampling drawn from the most likely few hundred tokens: the same distribution as
sorting the whole vocabulary, and the whole vocabulary still where the distribution is flat."""

import torch

from cai_core.models.transformers import _nucleus_tokens

DRAWS = 4000


def exact_nucleus(probabilities: torch.Tensor, top_p: float) -> dict[int, float]:
    """The nucleus written out the slow way: the sorted prefix whose mass first reaches top_p, renormalised."""
    kept, mass = {}, 0.0
    for token in probabilities.argsort(descending=True).tolist():
        if mass > top_p:
            break
        kept[token] = float(probabilities[token])
        mass += kept[token]
    total = sum(kept.values())
    return {token: p / total for token, p in kept.items()}


def test_a_peaked_row_is_drawn_from_the_exact_nucleus_in_its_proportions():
    vocabulary = 5000
    logits = torch.full((vocabulary,), -12.0)
    logits[[7, 4000, 123, 9]] = torch.tensor([3.0, 2.5, 2.0, 1.0])
    probabilities = torch.softmax(logits, dim=-1)
    nucleus = exact_nucleus(probabilities, 0.9)
    assert 1 < len(nucleus) < 50  # a few tokens, far fewer than the candidates

    generator = torch.Generator().manual_seed(0)
    tokens = _nucleus_tokens(probabilities.expand(DRAWS, -1).contiguous(), 0.9, generator, candidates=64)
    counts = torch.bincount(tokens, minlength=vocabulary)
    assert set(tokens.unique().tolist()) <= set(nucleus)
    for token, share in nucleus.items():
        assert abs(int(counts[token]) / DRAWS - share) < 0.03, (token, share)


def test_a_flat_row_falls_back_to_the_whole_vocabulary():
    vocabulary = 2000
    probabilities = torch.full((DRAWS, vocabulary), 1.0 / vocabulary)
    generator = torch.Generator().manual_seed(0)
    candidates = 64
    tokens = _nucleus_tokens(probabilities, 0.95, generator, candidates=candidates)
    # With only the candidates, every draw would be one of 64 tokens; the nucleus of a flat row holds 95% of them all.
    assert tokens.unique().numel() > 1000


def test_rows_that_fall_short_and_rows_that_do_not_share_a_batch():
    vocabulary = 3000
    peaked = torch.full((vocabulary,), -8.0)
    peaked[42] = 8.0
    rows = torch.stack([torch.softmax(peaked, -1), torch.full((vocabulary,), 1.0 / vocabulary)] * 200)
    tokens = _nucleus_tokens(rows, 0.9, torch.Generator().manual_seed(1), candidates=32)
    assert (tokens[0::2] == 42).all()           # the peaked rows: only the one token in their nucleus
    assert tokens[1::2].unique().numel() > 100  # the flat rows: drawn from far beyond 32 candidates
