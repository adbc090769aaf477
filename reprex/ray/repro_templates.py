"""The standalone repro scripts `reprex check-serve` writes: Ray's own steps, without Ray.

Each is plain Python that runs with `python repro.py` in the bundle's work dir and needs
only what it imports (nothing for the import check; smart_open + requests for the fetch).
Tokens are never written into them: they are read from the environment at run time.
The code is real, linted Python in reprex/templates/serve-*-repro.py; here only the docstring
and the parameter block are rendered from the check.
"""

from __future__ import annotations

from reprex.templates import template_text

PARAMETERS = "# reprex: parameters\n"
END = "# reprex: end\n"


def _template_body(name: str) -> str:
    """The template module's code after its own docstring."""
    return template_text(name).split('"""', 2)[2].lstrip("\n")


def _from_template(name: str, doc: list[str], parameters: list[str]) -> str:
    """The template with its docstring and its parameter block replaced; the rest copied as is."""
    before, _, rest = _template_body(name).partition(PARAMETERS)
    _, _, after = rest.partition(END)
    return "\n".join([_docstring(doc), before + "\n".join(parameters), after])


def _import_attr_source() -> str:
    body = _template_body(IMPORT_TEMPLATE)
    start = body.index("def import_attr(")
    return body[start:body.index("\n\n\n", start)] + "\n"


IMPORT_TEMPLATE = "serve-import-repro.py"
FETCH_TEMPLATE = "serve-fetch-repro.py"
# Ray's import_attr as copied into the import repro (the tests run it against Ray's own).
IMPORT_ATTR = _import_attr_source()


def _docstring(lines: list[str]) -> str:
    text = "\n".join(lines).replace('"""', "'''").replace("\\", "\\\\")
    return f'"""{text}\n"""'


def import_repro(*, config: str, app: str, import_path: str, subdir: str, ray_version: str | None,
                 hint: str | None) -> str:
    doc = [
        f"Minimal failing call extracted by `reprex check-serve` from {config}, application {app!r}:",
        "Ray Serve's import of the application's import_path, alone, without Ray.",
        "",
        "Serve builds each application in a task whose runtime_env working_dir is the",
        "application's: the task runs in that directory, with it first on sys.path, and calls",
        f"import_attr(import_path) (Ray {ray_version or '2.60'}). This file does the same with a copy",
        "of import_attr, so it needs no Ray. The working_dir's files are beside it.",
    ]
    if hint:
        doc += ["", "Hint: " + hint]
    return _from_template(IMPORT_TEMPLATE, doc, [
        f"IMPORT_PATH = {import_path!r}",
        "HERE = os.path.dirname(os.path.abspath(__file__))",
        f"WORKING_DIR = os.path.normpath(os.path.join(HERE, {subdir!r}))",
    ])


def fetch_repro(*, config: str, app: str, url: str, had_credentials: bool, ray_version: str | None,
                hint: str | None) -> str:
    doc = [
        f"Minimal failing call extracted by `reprex check-serve` from {config}, application {app!r}:",
        "Ray's download of the runtime_env working_dir, alone, without Ray.",
        "",
        f"Ray (ray/_private/runtime_env/protocol.py, Ray {ray_version or '2.60'}) fetches http(s)",
        "working_dir URIs with smart_open, sending these headers, plus a Bearer header with the",
        "token in RAY_RUNTIME_ENV_BEARER_TOKEN when that variable is set.",
        "No token is stored in this file. To send one, set in the environment",
        "  - RAY_RUNTIME_ENV_BEARER_TOKEN: sent as a Bearer header, as Ray does, or",
        "  - REPREX_URL_CREDENTIALS (user, colon, token): put back into the URL"
        + (" (the original URL had credentials)." if had_credentials else "."),
    ]
    if hint:
        doc += ["", "Hint: " + hint]
    return _from_template(FETCH_TEMPLATE, doc, [f"URL = {url!r}"])
