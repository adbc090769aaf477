"""Secret scrubbing, used by every writer before anything reaches a bundle.

Bundles are attached to public issues, so nothing secret may leave the machine.
A :class:`Redactor` scrubs strings, bytes, JSON-like objects and environment
mappings, and keeps a tally of what it replaced as ``(kind, where, count)``
entries (never the values) for the manifest's ``redactions`` list;
:meth:`Redactor.finds` asks the same question without scrubbing (argument pickles
are judged with it, see ``reprex.capture.pickles``).

What it catches, in this order:

1. PEM private key blocks (the whole block), and the base64 lines above an END
   line whose BEGIN was cut off;
2. literal values of environment variables whose *names* look secret
   (``HF_TOKEN``, ``DB_PASSWORD``, ``AWS_SECRET_ACCESS_KEY`` ...), passwords
   found in URL-valued variables, and ``extra_secrets``; each also in its
   URL-encoded, base64 and backslash-escaped forms (and UTF-16LE in bytes);
3. token formats with a fixed prefix: GitHub, GitLab, AWS access key ids, Slack,
   Stripe (keys and ``whsec_``), ``sk-`` keys (OpenAI, Anthropic ...), SendGrid,
   HuggingFace, Google, PyPI, npm, JWTs, and every prefixed rule of gitleaks'
   default set (listed in ``patterns.GITLEAKS_CHECKED``);
4. ``Authorization`` header values in any syntax, then bare ``Bearer`` tokens;
5. ``user:password@`` (and token-only userinfo) in URLs of any scheme; the
   password may hold any character but ``@`` and white space (``Tq3/Zx9+Lm``);
6. secret query parameters (``access_token=``, ``sig=``, ``X-Amz-Signature=`` ...);
7. values beside a name that looks secret: ``key = value`` in any config-ish
   syntax (yaml, ini, toml, .env, JSON, dict and kwargs reprs), pairs such as
   ``("X-Api-Key", "...")`` and header lists, credential call shapes
   (``auth=("user", "pw")``, ``HTTPBasicAuth("u", "pw")``), YAML values on the
   next line or in block scalars; AWS secret keys;
8. ``--password VALUE`` style flags and ``.netrc`` ``password`` entries;
9. encoded secrets: base64/base64url runs (and ``Basic`` credentials), percent-
   encoded runs and UTF-16/UTF-32 text (raw in bytes, escaped in reprs), each
   decoded and scrubbed with all of the above, two levels deep;
10. this machine's home directory, hostname and user name (``<home>``,
   ``<hostname>``, ``<user>``; home first, so ``/home/alice/x`` -> ``<home>/x``).

One rule says whether a name looks secret (:func:`looks_secret_name`): variable,
key, header, flag, attribute, class and file names all go through it.

Why not detect-secrets: measured on the same corpora (benchmarks/redact_formats.py)
it caught 102 of 130 planted secrets (this module: 130), flagged 363 of 414 ordinary
values (hashes, UUIDs, base64 images: its entropy plugins) against 0, and took
13 s per MB against 0.2 s.

Standard library only; patterns are compiled once, on first use, so importing
this module is cheap. Case-insensitive patterns run against a lower-cased copy
of the text (same length, same offsets), which keeps the regex engine on its
fast literal-prefix paths. ``Redactor.text`` is idempotent: placeholders are
never matched or counted again.

Where each part lives: :mod:`~reprex.redact.names` (the name rule),
:mod:`~reprex.redact.values` (is the value beside it a secret),
:mod:`~reprex.redact.patterns` (compiled patterns, token formats, gitleaks list),
:mod:`~reprex.redact.rules` (the steps above, in order, as small functions;
7b/7c in :mod:`~reprex.redact.context`, 9 in :mod:`~reprex.redact.decode`),
:mod:`~reprex.redact.literals` and :mod:`~reprex.redact.identity` (what one
capture knows), :mod:`~reprex.redact.redactor` (the bookkeeping and entry points).
"""

from __future__ import annotations

from reprex.redact.names import looks_secret_name, name_class
from reprex.redact.redactor import Redaction, Redactor
from reprex.redact.text import HOME_PLACEHOLDER, HOSTNAME_PLACEHOLDER, REDACTED, USER_PLACEHOLDER
from reprex.redact.values import value_is_secret

__all__ = [
    "REDACTED",
    "HOSTNAME_PLACEHOLDER",
    "USER_PLACEHOLDER",
    "HOME_PLACEHOLDER",
    "KINDS",
    "looks_secret_name",
    "name_class",
    "value_is_secret",
    "Redaction",
    "Redactor",
]

#: Every kind a Redactor can report.
KINDS = (
    "api-key",  # sk-... (OpenAI, Anthropic, ...), SendGrid SG.x.y
    "authorization",  # Authorization header values other than Bearer
    "aws-access-key",  # AKIA/ASIA... key ids
    "aws-secret-key",  # next to an aws_secret_access_key-style name
    "bearer",  # Bearer tokens (header or bare)
    "config-secret",  # key = value pairs / dict fields / flags whose name looks secret
    "env-secret",  # literal values of secret-looking environment variables
    "extra-secret",  # literal values passed as extra_secrets
    "github-token",
    "gitlab-token",
    "google-api-key",
    "google-oauth-token",
    "home",
    "hostname",
    "huggingface-token",
    "jwt",
    "npm-token",
    "password",  # password = ..., .netrc password, {"password": ...}, --password x
    "pem-private-key",
    "pypi-token",
    "query-secret",  # ?access_token=, &sig=, X-Amz-Signature= ...
    "slack-token",
    "stripe-key",
    "url-credentials",
    "username",
    "basic-auth",  # user:password pairs found by decoding (Basic headers, base64 blobs)
    "cut-fragment",  # base64 lines left at the start of a cut text (a key whose BEGIN line was cut)
    # vendor formats (gitleaks' default rules with a fixed prefix)
    "twilio-key", "mailgun-key", "shopify-token", "square-token", "databricks-token",
    "digitalocean-token", "doppler-token", "dynatrace-token", "atlassian-token", "postman-token",
    "pulumi-token", "grafana-token", "vault-token", "terraform-token", "linear-token",
    "sentry-token", "newrelic-key", "age-secret-key", "twitter-token", "alibaba-key",
    "facebook-token", "planetscale-token", "prefect-token", "readme-token", "rubygems-token",
    "sendinblue-key", "duffel-token", "easypost-token", "flutterwave-key", "frameio-token",
    "flyio-token", "clojars-token", "cloudflare-key", "nuget-key", "artifactory-key",
    "azure-client-secret", "telegram-bot-token",
)
