"""Build index.json from docs.txt with one embedding model (the index was built with v1).

    python build_index.py topics-encoder-v1
"""

import json
import sys

from embed import MODELS, embed


def main(model: str = "topics-encoder-v1") -> None:
    docs = [line.strip() for line in open("docs.txt") if line.strip()]
    index = {"model": model, "dim": MODELS[model],
             "docs": [{"text": d, "vector": [round(x, 6) for x in embed(d, model)]} for d in docs]}
    with open("index.json", "w") as fh:
        json.dump(index, fh, indent=1)
    print(f"indexed {len(docs)} documents with {model} ({MODELS[model]} dims)")


if __name__ == "__main__":
    main(*sys.argv[1:])
