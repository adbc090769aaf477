"""A small training script that fails the way real ones do: far from the cause.

The CSV has a `label` column, the config asks for `target`; the KeyError surfaces
inside the batching helper. `reprex capture -- python train.py` bundles it.
"""
import csv
import json
import sys


def load_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def batches(rows, column, size):
    for start in range(0, len(rows), size):
        yield [float(row[column]) for row in rows[start:start + size]]


def main(config_path):
    with open(config_path) as fh:
        config = json.load(fh)
    rows = load_rows(config["data"])
    total = sum(sum(batch) for batch in batches(rows, config["target_column"], config["batch_size"]))
    print(f"trained on {len(rows)} rows, total={total}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "config.json")
