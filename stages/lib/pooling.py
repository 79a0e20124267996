"""Pooling as pure functions of (token_embeddings [b, s, d], attention_mask [b, s]).

Positions come from the mask, never from the padding side, so left- and right-padded batches give
the same vectors. A wrong pooling looks exactly like quantization damage, hence the care.
"""
from __future__ import annotations

import numpy as np

from .errors import UserError


def mean_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask.astype(tokens.dtype)[:, :, None]
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    return (tokens * weights).sum(axis=1) / counts


def first_token_index(mask: np.ndarray) -> np.ndarray:
    return np.argmax(mask > 0, axis=1)


def last_token_index(mask: np.ndarray) -> np.ndarray:
    seq = mask.shape[1]
    return seq - 1 - np.argmax(np.flip(mask > 0, axis=1), axis=1)


def cls_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The first real token (position 0 with right padding, later with left padding)."""
    return tokens[np.arange(tokens.shape[0]), first_token_index(mask)]


def last_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The last real token: what decoder embedders (Qwen2-based BGE-Code, e5-mistral) use."""
    return tokens[np.arange(tokens.shape[0]), last_token_index(mask)]


POOLERS = {"mean": mean_pool, "cls": cls_pool, "last": last_pool}


def pool(mode: str, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    try:
        return POOLERS[mode](tokens, mask)
    except KeyError:
        raise UserError(f"unknown pooling {mode!r}; use one of {', '.join(POOLERS)}") from None


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)
