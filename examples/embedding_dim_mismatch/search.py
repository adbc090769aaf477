"""Semantic search over index.json with the query model named in config.json.

    python search.py "reset my account password"              # fails loudly: 48 != 64
    python search.py --no-check "reset my account password"   # the silent version: a cake recipe

config.json was switched to topics-encoder-v2 (48 dims); index.json was built with
topics-encoder-v1 (64 dims). A pure-Python dot product over zip() silently drops the extra
dimensions (and numpy broadcasting or a truncating vector store can do the same), so the
search "works" and returns confident nonsense. check_dimensions() makes it loud.
"""

import json
import sys

from embed import embed


class EmbeddingDimensionError(ValueError):
    pass


def check_dimensions(query: list[float], index: dict, query_model: str) -> None:
    if len(query) != index["dim"]:
        raise EmbeddingDimensionError(
            f"query embedding has {len(query)} dimensions ({query_model}) but the index has {index['dim']} "
            f"({index['model']}): embed queries with the model the index was built with, or rebuild the index")


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))  # zip() stops at the shorter vector: silent truncation


def search(text: str, config: dict, check: bool = True) -> list[tuple[float, str]]:
    with open(config["index"]) as fh:
        index = json.load(fh)
    query = embed(text, config["query_model"])
    if check:
        check_dimensions(query, index, config["query_model"])
    scored = [(cosine(query, doc["vector"]), doc["text"]) for doc in index["docs"]]
    return sorted(scored, reverse=True)[: config["top_k"]]


def main(argv: list[str]) -> None:
    check = "--no-check" not in argv
    words = [a for a in argv if a != "--no-check"]
    text = " ".join(words) or "reset my account password"
    with open("config.json") as fh:
        config = json.load(fh)
    for score, doc in search(text, config, check=check):
        print(f"{score:+.3f}  {doc}")


if __name__ == "__main__":
    main(sys.argv[1:])
