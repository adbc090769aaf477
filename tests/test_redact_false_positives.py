"""The other side of redaction: ordinary values a run prints must survive it, or bundles
lose what a maintainer needs (a digest, a commit, a shape, a path). A corpus of hashes,
UUIDs, git SHAs, base64 image data, paths, numbers, versions and ML log lines is scrubbed
as text, as a dict and as file bytes; the count wrongly redacted is printed and must be 0.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import uuid
import zlib

from reprex.redact import Redactor

RNG = random.Random(777)


def _png(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(RNG.randrange(256) for _ in range(w * 3)) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def ordinary_values() -> dict[str, list[str]]:
    words = [f"sample-{i}".encode() for i in range(200)]
    return {
        "md5": [hashlib.md5(w).hexdigest() for w in words[:40]],
        "sha1 / git SHA": [hashlib.sha1(w).hexdigest() for w in words[:60]] + [hashlib.sha1(w).hexdigest()[:7] for w in words[:20]],
        "sha256": [hashlib.sha256(w).hexdigest() for w in words[:40]] + [f"sha256:{hashlib.sha256(w).hexdigest()}" for w in words[:10]],
        "sha256 base64 (SRI)": [f"sha256-{base64.b64encode(hashlib.sha256(w).digest()).decode()}" for w in words[:20]],
        "uuid": [str(uuid.UUID(int=RNG.getrandbits(128), version=4)) for _ in range(40)]
                + [uuid.UUID(int=RNG.getrandbits(128), version=4).hex for _ in range(10)],
        "base64 image data": [f"data:image/png;base64,{base64.b64encode(_png(4 + i, 3)).decode()}" for i in range(15)]
                             + [base64.b64encode(bytes(RNG.randrange(256) for _ in range(48 + i))).decode() for i in range(15)],
        "base64 of ordinary text": [base64.b64encode(f"batch {i} of the validation split".encode()).decode() for i in range(10)],
        "paths": [f"/home/runner/work/proj/src/module_{i}/layer_{i * 7}.py" for i in range(15)]
                 + [f"/usr/lib/python3.11/site-packages/torch/nn/modules/Conv{i}d.py" for i in range(1, 4)]
                 + [f"C:\\Users\\Public\\data\\shard-{i:05d}-of-00100.parquet" for i in range(10)]
                 + [f"s3://bucket/datasets/v{i}/train-{i:05d}.tfrecord" for i in range(10)]
                 + [f"/tmp/pytest-of-root/pytest-{i}/test_x0/out.json" for i in range(5)],
        "numbers": [str(RNG.randrange(10 ** 12)) for _ in range(20)] + [f"{RNG.random():.12f}" for _ in range(20)]
                   + [f"{RNG.random() * 1e-5:.6e}" for _ in range(10)] + [str(1_700_000_000 + i * 3607) for i in range(10)],
        "versions and pins": [f"torch=={i}.{i + 1}.0+cu121" for i in range(5)] + ["nvidia-cudnn-cu12==8.9.2.26",
                              "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"],
        "ML log lines": [f"step {i}: loss={RNG.random():.4f} lr=3e-4 grad_norm={RNG.random() * 10:.3f} tokens/s=12345.6"
                         for i in range(10)]
                        + ["tokenizer.pad_token = tokenizer.eos_token", "max_new_tokens=256, num_beams=4",
                           "Missing key(s) in state_dict: \"model.embed_tokens.weight\"",
                           "KeyError: 'password'", "token_type_ids shape: torch.Size([8, 512])",
                           "docker.io/library/python@sha256:" + hashlib.sha256(b"img").hexdigest(),
                           "ray://10.0.0.12:10001", "https://huggingface.co/meta-llama/Llama-3-8B/resolve/main/config.json",
                           "2026-12-01T22:46:10.123456+00:00", "CUDA_VISIBLE_DEVICES=0,1,2,3",
                           "ghp_ and sk- are prefixes; AKIA too", "secret_name: my-k8s-secret",
                           "q=hello%20world%21&lang=en%2Dus", repr("plain text".encode("utf-16-le"))],
    }


def test_ordinary_values_are_not_redacted(capsys):
    red = Redactor({}, hostname="ci-runner-42", username="runner7", home="/home/runner7")
    values = ordinary_values()
    wrong: list[tuple[str, str]] = []
    total = 0
    for family, items in values.items():
        for v in items:
            total += 1
            for carrier in (v, f"value: {v}", f"{{'value': {v!r}}}"):
                if red.text(carrier, "stdout") != carrier:
                    wrong.append((family, v))
                    break
            else:
                if red.obj({"value": v, "items": [v]}, "probe") != {"value": v, "items": [v]} \
                        or red.bytes(v.encode(), "files/x") != v.encode():
                    wrong.append((family, v))
    by_family = {f: sum(1 for w in wrong if w[0] == f) for f in values}
    with capsys.disabled():  # the tally shows in every run, not only with -s
        print(f"\n[false positives] {len(wrong)} of {total} ordinary values wrongly redacted: "
              + ", ".join(f"{f} {n}/{len(values[f])}" for f, n in by_family.items()))
    assert total >= 400
    assert wrong == []
    assert red.report() == []


def test_python_source_keeps_names_beside_secret_looking_keys_and_never_ships_broken_modules(tmp_path):
    """Found on pyflakes 2.1.1 (checker.py: `PASS = ignore`, an AST handler alias): the
    key=value rule replaced the name, every replay then died on a SyntaxError in the bundled
    module. In Python source an unquoted name is code; a value the rule still replaces
    unquoted (a number) would break the module, which is then left out, with its reason."""
    import sys
    import zipfile

    from reprex.capture.pipeline import CaptureOptions, capture_command

    (tmp_path / "handlers.py").write_text("def ignore(node):\n    return None\n\nPASS = ignore\nTOKEN = PASS\n")
    (tmp_path / "pins.py").write_text("ADMIN_PASSWORD = 918273645\n")
    (tmp_path / "app.py").write_text("import handlers, pins\n\nhandlers.PASS(None)\nraise KeyError(handlers.TOKEN.__name__)\n")
    result = capture_command([sys.executable, "app.py"], CaptureOptions(tee=False), cwd=str(tmp_path), write=False)
    bundle = result.bundle
    assert bundle.files["files/handlers.py"].decode() == (tmp_path / "handlers.py").read_text()
    assert "files/pins.py" not in bundle.files
    skipped = {s["path"]: s["reason"] for s in bundle.manifest["files"]["skipped"]}
    assert "redaction would break its Python syntax" in skipped["pins.py"]
    path = bundle.write(tmp_path / "b.reprex.zip")
    with zipfile.ZipFile(path) as zf:
        assert not any(b"918273645" in zf.read(n) for n in zf.namelist())
    assert bundle.manifest["expect"]["exception"]["type"] == "KeyError"


def test_base64_runs_of_zero_bytes_are_not_a_twitter_bearer_token():
    from reprex.redact import Redactor

    red = Redactor({})
    zeros = __import__("base64").b64encode(bytes(300)).decode()
    assert red.text(zeros, "files/reprex_test_x.py") == zeros
    real_shape = "A" * 21 + "MLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI%3DEUifiRBk"
    assert "<redacted:twitter-token>" in red.text(real_shape, "x")


def test_a_pickled_fixture_value_survives_the_bundles_redaction(tmp_path):
    """Found on networkx 2.5 (numpy arrays of zeros as fixture values): the script's base64
    pickle held runs of 'A' that the twitter-token rule replaced, so the replay died on
    `pickle data was truncated`. The value's pickle must replay intact, or not be used."""
    import subprocess
    import sys
    import zipfile

    (tmp_path / "test_arr.py").write_text(
        "import array\nimport pytest\n\n@pytest.fixture\ndef arr():\n    return array.array('q', [0] * 64)\n\n"
        "def test_sum(arr):\n    assert sum(arr) == 1\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture", "out",
                          "test_arr.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 failed" in run.stdout, run.stdout + run.stderr
    (bundle,) = (tmp_path / "out").glob("*.reprex.zip")
    with zipfile.ZipFile(bundle) as zf:
        manifest = __import__("json").loads(zf.read("reprex.json"))
    assert not [r for r in manifest["redactions"] if r["kind"] == "twitter-token"]
    replay = subprocess.run([sys.executable, "-m", "reprex", "replay", str(bundle), "--backend", "local", "--json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert __import__("json").loads(replay.stdout)["verdict"] == "reproduced", replay.stdout + replay.stderr
