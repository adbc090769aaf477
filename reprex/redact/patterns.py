"""Every compiled pattern the rules use, the token formats table and the gitleaks list.

Patterns are compiled once, on first use (:func:`patterns`), so importing the
redactor is cheap. Names ending in ``_lc`` are lower-case only and run against
the lower-cased twin of the text, which keeps the regex engine on its fast
literal-prefix paths.
"""

from __future__ import annotations

import re
import threading

from reprex.redact.values import AUTH_SCHEMES


# Stems a secret-looking key must contain (the names are then judged by names.classify).
_STEMS = r"(?:pass|pw|secret|token|key|auth|cred|cookie|session|private|sig|dsn|conn|salt|jwt|bearer)"
_QUOTED_VALUE = (
    r"""\"\"\"(?:(?!\"\"\")[\s\S]){1,4096}\"\"\""""  # TOML / Python multi-line strings
    r"""|'''(?:(?!''')[\s\S]){1,4096}'''|"""
    r"""\\"(?:(?!\\").){0,4096}\\"|\\'(?:(?!\\').){0,4096}\\'"""
    r"""|"(?:[^"\\\n]|\\.){0,4096}"|'(?:[^'\\\n]|\\.){0,4096}'"""
)


class Patterns:
    """All compiled patterns. Patterns whose name ends in ``_lc`` are lower-case
    only and run against the lower-cased copy of the text."""

    def __init__(self) -> None:
        c = re.compile
        self.pem_begin = c(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
        self.pem_end = c(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
        self.pem_body = c(r"[A-Za-z0-9+/=\s\\:,.-]*")  # a truncated block: the base64 that follows
        # (kind, pattern): each starts with a literal so the engine can skip
        # ahead fast. A group "v" limits the replacement to that part.
        def tok(prefix: str, rest: str, left: str = "A-Za-z0-9_") -> str:
            # literal prefix first (fast scan), then the left word boundary as
            # a fixed-width lookbehind, so a long run of token characters is
            # rejected at each position in O(1) instead of being rescanned.
            return re.escape(prefix) + r"(?<![%s].{%d})" % (left, len(prefix)) + rest

        tokens = [
            ("github-token", tok("gh", r"[pousr]_[A-Za-z0-9]{30,255}\b")),
            ("github-token", tok("github_pat_", r"[A-Za-z0-9_]{30,255}\b")),
            ("gitlab-token", tok("gl", r"(?:pat|dt|rt|ptt|cbt|oas|ft|imt|agent|soat)-[A-Za-z0-9_-]{20,}")),
            ("aws-access-key", tok("A", r"(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|BIA|CCA)[A-Z0-9]{16}\b")),
            ("slack-token", tok("xox", r"[abposre]-[A-Za-z0-9-]{10,}")),
            ("slack-token", tok("xapp-", r"\d-[A-Za-z0-9-]{10,}")),
            ("slack-token", (r"hooks\.slack\.com/services/(?P<v>[A-Za-z0-9_/-]{20,})")),
            ("stripe-key", tok("sk_", r"(?:live|test)_[A-Za-z0-9]{10,}")),
            ("stripe-key", tok("rk_", r"(?:live|test)_[A-Za-z0-9]{10,}")),
            ("api-key", tok("sk-", r"[A-Za-z0-9_-]{20,}", left="A-Za-z0-9_-")),
            ("api-key", tok("SG.", r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}")),
            ("huggingface-token", tok("hf_", r"[A-Za-z0-9]{30,}\b")),
            ("google-api-key", tok("AIza", r"[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")),
            ("google-oauth-token", tok("ya29.", r"[A-Za-z0-9_-]{20,}")),
            ("pypi-token", tok("pypi-AgE", r"[A-Za-z0-9_-]{40,}")),
            ("npm-token", tok("npm_", r"[A-Za-z0-9]{36}\b")),
            ("jwt", tok("eyJ", r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
            # Formats from gitleaks' default rule set that carry a vendor prefix (the list
            # checked is in GITLEAKS_CHECKED); keyword-only rules are the key = value rules.
            ("stripe-key", tok("whsec_", r"[A-Za-z0-9+/=]{24,}")),
            ("twilio-key", tok("SK", r"[0-9a-fA-F]{32}\b")),
            ("mailgun-key", tok("key-", r"[0-9a-f]{32}\b")),
            ("shopify-token", tok("shp", r"(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b")),
            ("square-token", tok("sq0", r"(?:atp|csp)-[0-9A-Za-z_-]{22,60}")),
            ("square-token", tok("EAAA", r"[0-9A-Za-z_+-]{60}\b")),
            ("databricks-token", tok("dapi", r"[a-f0-9]{32}(?:-\d)?\b")),
            ("digitalocean-token", tok("do", r"[por]_v1_[a-f0-9]{64}\b")),
            ("doppler-token", tok("dp.", r"(?:pt|st|sa|scim|audit|ct)\.[A-Za-z0-9]{40,44}")),
            ("dynatrace-token", tok("dt0c01.", r"[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}")),
            ("atlassian-token", tok("ATATT3", r"[A-Za-z0-9_=-]{100,}")),
            ("postman-token", tok("PMAK-", r"[a-f0-9]{24}-[a-f0-9]{34}")),
            ("pulumi-token", tok("pul-", r"[a-f0-9]{40}\b")),
            ("grafana-token", tok("glc_", r"[A-Za-z0-9+/]{32,400}={0,2}")),
            ("grafana-token", tok("glsa_", r"[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}")),
            ("vault-token", tok("hv", r"[sb]\.[A-Za-z0-9_-]{24,}")),
            ("terraform-token", (r"\.atlasv1\.(?P<v>[A-Za-z0-9_=-]{60,70})")),
            ("linear-token", tok("lin_api_", r"[A-Za-z0-9]{40}\b")),
            ("sentry-token", tok("sntrys_", r"[A-Za-z0-9+/=_-]{50,}")),
            ("sentry-token", tok("sntryu_", r"[a-f0-9]{64}\b")),
            ("newrelic-key", tok("NRAK-", r"[A-Z0-9]{27}\b")),
            ("age-secret-key", tok("AGE-SECRET-KEY-1", r"[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}")),
            ("twitter-token", tok("AAAAAAAAAAAAAAAAAAAAA", r"[A-Za-z0-9%]{30,}")),
            ("alibaba-key", tok("LTAI", r"[A-Za-z0-9]{20}\b")),
            ("facebook-token", tok("EAA", r"[MC][A-Za-z0-9]{100,}")),
            ("planetscale-token", tok("pscale_", r"(?:tkn|pw|oauth)_[A-Za-z0-9=._-]{32,64}")),
            ("prefect-token", tok("pnu_", r"[A-Za-z0-9]{36}\b")),
            ("readme-token", tok("rdme_", r"[a-z0-9]{70}\b")),
            ("rubygems-token", tok("rubygems_", r"[a-f0-9]{48}\b")),
            ("sendinblue-key", tok("xkeysib-", r"[a-f0-9]{64}-[A-Za-z0-9]{16}")),
            ("duffel-token", tok("duffel_", r"(?:test|live)_[A-Za-z0-9_=-]{43}")),
            ("easypost-token", tok("EZ", r"[AT]K[A-Za-z0-9]{54}")),
            ("flutterwave-key", tok("FLWSECK", r"(?:_TEST)?-[a-hA-H0-9]{32}-X")),
            ("frameio-token", tok("fio-u-", r"[A-Za-z0-9_=-]{64}")),
            ("flyio-token", tok("fo1_", r"[A-Za-z0-9_-]{43}")),
            ("flyio-token", tok("fm2_", r"[A-Za-z0-9+/]{100,}={0,3}")),
            ("clojars-token", tok("CLOJARS_", r"[a-z0-9]{60}")),
            ("huggingface-token", tok("api_org_", r"[A-Za-z0-9]{34}\b")),
            ("google-oauth-token", tok("GOCSPX-", r"[A-Za-z0-9_-]{28}")),
            ("cloudflare-key", tok("v1.0-", r"[a-f0-9]{24}-[a-f0-9]{146}")),
            ("nuget-key", tok("oy2", r"[a-z0-9]{43}\b")),
            ("artifactory-key", tok("AKCp", r"[A-Za-z0-9]{69}")),
            ("gitlab-token", tok("GR1348941", r"[A-Za-z0-9_-]{20}")),
            ("azure-client-secret", (r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])")),
            ("telegram-bot-token", (r"(?<![0-9])[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])")),
        ]
        guards = {"azure-client-secret": "Q~", "telegram-bot-token": ":AA"}
        # (sources, compiled on first use: most never meet their prefix in a capture)
        self.tokens = [(kind, src, guards.get(kind) or _literal_prefix(src)) for kind, src in tokens]
        self.auth_lc = c(
            r"""authori[sz]ation(?P<sep>\\?["']?[ \t]*[:=][ \t]*\\?["']?)"""
            r"(?:(?P<scheme>" + "|".join(re.escape(x) for x in AUTH_SCHEMES) + r")[ \t]+"
            r"""(?P<sval>[^\r\n'"\\]+)|(?P<val>[^\s'"\\,;{}$%<]+))"""
        )
        self.bearer_lc = c(r"bearer[ \t]+(?P<val>[a-z0-9._~+/-]{8,}=*)")
        # userinfo: a user part without / ? # : @, then an optional password that may hold
        # any character but @ and white space (`app:Tq3/Zx9+Lm@db`: drivers read it so)
        self.url = c(r"://(?P<ui>[^\s/?#:@'\"<>\\]*(?::[^\s@'\"<>\\]*)?)@")
        self.query_lc = c(
            r"[?&;](?:access_token|refresh_token|id_token|auth_token|token|api_key"
            r"|apikey|api-key|key|client_secret|secret|password|passwd|pwd|sig|signature"
            r"|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature"
            r"|x-goog-credential|code|private_token|sessionid|session_token|auth)="
            r"(?P<val>[^&#\s\"'<>\\]+)"
        )
        self.aws_secret_lc = c(
            r"""secret_?(?:access_?)?key\\?["']?[ \t]*(?::|=>|=)[ \t]*\\?["']?"""
            r"(?P<val>[a-z0-9/+]{30,}={0,2})(?![a-z0-9/+=])"
        )
        # key = value: a fast pre-scan finds "stem...<sep>", the full pattern
        # then matches from the start of the key.
        # (a bare "key" is never a secret key in text: it needs a qualifier)
        # ((?=(x))\1 is an atomic x: no backtracking through a long run of key characters)
        self.kv_pre_lc = c(
            _STEMS.replace("|key|", r"|key(?<=[\w.-]key)|")
            + r"""(?=([\w.-]{0,80}))\1\\?["']?[ \t]*(?:=|:(?!:))"""
        )
        self.kv_lc = c(
            r"(?P<key>[a-z_][\w.-]{0,200})"  # (the pre-scan found a stem in it)
            r"""(?P<sep>\\?["']?[ \t]*(?::[ \t]*[a-z_][\w.\[\]|, ]{0,60}?[ \t]*=(?!=)|:=|=>|=(?!=)|:(?!:))[ \t]*)"""
        )
        # the value, matched only once the key has been judged secret (values are
        # bounded so a long line without delimiters cannot go quadratic)
        self.kv_val_lc = c(
            _QUOTED_VALUE +
            r"""|[^\s'",;)}\]<>][^\s'",;)}\]<>]{0,4095}"""
            r"""(?:[ \t]+(?![#;]|//)[^\s'",;)}\]<>=:]{1,4096}(?=[ \t\r\n]|\Z)){0,64}"""
        )
        self.flag_lc = c(
            r"(?P<key>-(?<![\w-]-)-?(?:[a-z][\w-]{0,60}?)?" + _STEMS + r"[\w-]{0,60})(?P<sep>[ \t]+)"
            r"""(?P<val>"(?:[^"\\\n]|\\.){0,4096}"|'(?:[^'\\\n]|\\.){0,4096}'|[^\s'"<>-][^\s'"<>]{0,4095})"""
        )
        self.netrc_lc = c(
            r"password[ \t]+(?P<val>[^\s'\"<]+)"
            r"(?=[ \t]*(?:$|(?:machine|login|account|macdef|default)\b))",
            re.M,
        )
        self.netrc_ctx_lc = c(r"\b(?:machine|default)\b")
        # mysql -pPASSWORD (the password glued to the flag)
        self.mysql_p_lc = c(r"""\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n]{0,300}?[ \t]-p(?P<val>[^\s'"<>]{3,})""")
        # Dockerfile `ENV NAME value` (`ENV NAME=value` and `ARG NAME=value` are key = value)
        self.docker_env_lc = c(r"^[ \t]*env[ \t]+(?P<key>[a-z_]\w{0,100})[ \t]+(?P<val>[^\s=][^\n]{0,4095})$", re.M)
        # ("X-Api-Key", "value"), [b"authorization", b"..."], ('password', 'x'): a pair
        # whose first item names the second
        _item = r"""(?:(?!(?P=%s))[^\\\n]|\\.){1,4096}"""
        self.pair_lc = c(
            r"""[(\[][ \t]*b?(?P<q>['"])(?P<key>[a-z_][\w.-]{0,80})(?P=q)[ \t]*,[ \t]*b?(?P<q2>['"])"""
            r"(?P<val>" + _item % "q2" + r")(?P=q2)"
        )
        # auth=("user", "pw"), HTTPBasicAuth("user", "pw"), smtp.login("user", "pw"),
        # 'credentials': ['user', 'pw']: the second item is a password
        self.cred_call_lc = c(
            r"""(?P<kw>auth|basicauth|digestauth|proxyauth|credentials?|creds|login|password_credentials"""
            r"""|set_password)['"]?[ \t]*[=:]?[ \t]*[(\[][ \t]*b?(?P<q>['"])(?:(?!(?P=q))[^\\\n]|\\.){0,256}(?P=q)[ \t]*,"""
            r"""(?:[ \t]*b?(?P<q3>['"])(?:(?!(?P=q3))[^\\\n]|\\.){0,256}(?P=q3)[ \t]*,)?"""
            r"""[ \t]*b?(?P<q2>['"])(?P<val>""" + _item % "q2" + r")(?P=q2)"
        )
        # a YAML key whose value is on the next lines: `password:` / `token: >-` / `key: |`
        self.yaml_key_lc = c(
            r"""^(?P<ind>[ \t]*)(?:-[ \t]+)?(?P<kq>["']?)(?P<key>[a-z_][\w.-]{0,100})(?P=kq)[ \t]*:[ \t]*"""
            r"(?P<block>[|>][-+0-9]{0,3})?[ \t]*(?:#[^\n]*)?\r?$",
            re.M,
        )
        # base64 / base64url runs: decoded and scrubbed
        self.b64 = c(r"[A-Za-z0-9+/_=-]{16,}")
        # UTF-16/32 text shown as escapes in a bytes repr: b'A\\x00K\\x00...'
        # (one pattern for either byte order: the NULs are dropped, whatever their side)
        _ch = r"[\x20\x21\x23-\x26\x28-\x5b\x5d-\x7e]"
        self.escaped_wide = c(r"(?:\\x00){0,3}(?:%s(?:\\x00){1,3}){5,}%s?" % (_ch, _ch))
        # UTF-16/32 runs of printable ASCII in raw bytes
        self.wide_views = [
            (re.compile(rb"(?:[\x20-\x7e]\x00\x00\x00){6,}"), "utf-32-le"),
            (re.compile(rb"(?:\x00\x00\x00[\x20-\x7e]){6,}"), "utf-32-be"),
            (re.compile(rb"(?:[\x20-\x7e]\x00){6,}"), "utf-16-le"),
            (re.compile(rb"(?:\x00[\x20-\x7e]){6,}"), "utf-16-be"),
        ]
        # curl -u user:pass, --user=user:pass, ['-u', 'user:pass']
        self.user_flag_lc = c(
            r"""-(?<![\w-]-)(?:u|-user|-proxy-user)(?:[ \t=]+|(?P<q>['"]),[ \t]*['"])"""
            r"""[^\s:'"<>]+:(?P<val>[^\s'"<>]+)"""
        )


#: gitleaks default rules (config/gitleaks.toml) checked against this module. Prefixed
#: formats have a token pattern above; keyword rules (generic-api-key, *-api-token,
#: *-client-secret, heroku, discord, okta, ...) are the secret-name rules of step 7;
#: private-key and jwt have their own steps. Not covered: rules that are a bare hex or
#: UUID with no prefix and no name beside it (indistinguishable from a digest or id).
GITLEAKS_CHECKED = (
    "adafruit-api-key (keyword)", "adobe-client-secret (keyword)", "age-secret-key", "airtable-api-key (keyword)",
    "alibaba-access-key-id", "alibaba-secret-key (keyword)", "anthropic-api-key", "anthropic-admin-api-key",
    "artifactory-api-key", "asana-client-secret (keyword)", "atlassian-api-token", "authress-service-client-access-key (keyword)",
    "aws-access-token", "azure-ad-client-secret", "beamer-api-token (keyword)", "bitbucket-client-secret (keyword)",
    "clojars-api-token", "cloudflare-origin-ca-key", "databricks-api-token", "datadog-access-token (keyword)",
    "digitalocean-access-token", "digitalocean-pat", "digitalocean-refresh-token", "discord-api-token (keyword)",
    "doppler-api-token", "dropbox-api-token (keyword)", "duffel-api-token", "dynatrace-api-token",
    "easypost-api-token", "easypost-test-api-token", "facebook-access-token", "facebook-secret (keyword)",
    "flutterwave-secret-key", "fly.io-access-token", "frameio-api-token", "gcp-api-key", "generic-api-key (keyword)",
    "github-app-token", "github-fine-grained-pat", "github-oauth", "github-pat", "github-refresh-token",
    "gitlab-pat", "gitlab-ptt", "gitlab-rrt", "gitlab-runner-authentication-token", "gitlab-deploy-token",
    "gocardless-api-token (keyword)", "grafana-cloud-api-token", "grafana-service-account-token",
    "hashicorp-tf-api-token", "heroku-api-key (keyword)", "hubspot-api-key (keyword)", "huggingface-access-token",
    "huggingface-organization-api-token", "jwt", "linear-api-key", "mailchimp-api-key (keyword)", "mailgun-private-api-token",
    "new-relic-user-api-key", "npm-access-token", "nuget-api-key", "okta-access-token (keyword)", "openai-api-key",
    "planetscale-api-token", "planetscale-password", "planetscale-oauth-token", "postman-api-token",
    "prefect-api-token", "private-key", "pulumi-api-token", "pypi-upload-token", "readme-api-token",
    "rubygems-api-token", "sendgrid-api-token", "sendinblue-api-token", "sentry-org-token", "sentry-user-token",
    "shopify-access-token", "shopify-custom-access-token", "shopify-private-app-access-token",
    "shopify-shared-secret", "slack-bot-token", "slack-user-token", "slack-app-token", "slack-webhook-url",
    "square-access-token", "stripe-access-token", "telegram-bot-api-token", "twilio-api-key",
    "twitter-bearer-token", "vault-service-token", "vault-batch-token",
)


def _literal_prefix(pattern: str) -> str:
    """The literal text a pattern starts with (each token pattern has one): a cheap guard."""
    m = re.match(r"(?:\\[^A-Za-z0-9]|[A-Za-z0-9_~-])+", pattern)
    return re.sub(r"\\(.)", r"\1", m.group()) if m else ""


_PATTERNS: Patterns | None = None
_PATTERNS_LOCK = threading.Lock()


def patterns() -> Patterns:
    global _PATTERNS
    if _PATTERNS is None:
        with _PATTERNS_LOCK:
            if _PATTERNS is None:
                _PATTERNS = Patterns()
    return _PATTERNS


# Sources the rules compile on first use (text.rx).
PORT_THEN_PATH = r"\d{1,5}(?:[/?#]|$)"
PEM_BODY_LINE = r"[ \t'\"]*(?:[A-Za-z0-9+/=]{16,}|[A-Za-z-]+: [^\n]{0,200}|)[ \t'\"]*(?:\\r)?"
PEM_BODY_AFTER_QUOTE = r"""['"]([A-Za-z0-9+/=]{16,})[ \t]*(?:\\r)?$"""
PCT = r"%[0-9A-Fa-f]{2}"
PCT_RUN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789%._~+-")
USER_PASS = r"[^\s:]{1,64}:[^\s]{6,}"
YAML_ENTRY = r"[ \t]*(?:-(?:[ \t]|$)|[\w.\"'-]+[ \t]*:(?:[ \t]|$))"
CUT_HEAD = r"(?:\[\.\.\. [^\n]{0,80}cut[^\n]{0,80}\]\r?\n)?(?P<body>)(?:[ \t]*[A-Za-z0-9+/=]{16,}[ \t]*\r?\n)+"
