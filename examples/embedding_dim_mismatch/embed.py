"""A deterministic stand-in for a sentence-embedding model: the hashing trick, pure Python.

Each model name hashes tokens differently and has its own dimension, like real encoders
(e.g. a 384-dim MiniLM index queried with a 256-dim model after a config change).
"""

import hashlib
import math
import re

MODELS = {"topics-encoder-v1": 64, "topics-encoder-v2": 48}


def embed(text: str, model: str) -> list[float]:
    dim = MODELS[model]
    vec = [0.0] * dim
    for token in re.findall(r"[a-z]+", text.lower()):
        digest = hashlib.sha256(f"{model}:{token}".encode()).digest()
        index = int.from_bytes(digest[:4], "big") % dim
        vec[index] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]
