"""Schemathesis hooks for keygate's generated API test (`crates/keygate/tests/openapi_fuzz.rs`).

Schemathesis calls every operation, the destructive ones included: `DELETE /api/v1/tokens/self`,
rotate, disable, `DELETE /api/v1/users/{id}` (which revokes every token that user owns). With one
fixed token it would lock itself out after a few calls and test nothing but 401s. So:

- Every test case gets a token minted for it alone, holding every scope its tenant can hold.
- The minting token (the "minter") lives in a tenant made for the run. Schemathesis can destroy
  it too (it may list the tenant's tokens and revoke them); a mint that is refused then makes a
  new tenant and carries on there.
- New tenants are made with the bootstrap token of tenant `default`. Schemathesis never sends
  that token, and no token of a made tenant can reach tenant `default` (nothing crosses tenants).
  Only `POST /api/v1/tenants` gets a token of `default`, minted with `tenants:admin` alone.
- `GET`/`DELETE /api/v1/session` get a web login (cookie and CSRF token) of the tenant's admin.
- Generated ids, tokens and credentials almost never name anything that exists, so they test
  only the 404/401 answers. Every second positive test case of the fuzzing and coverage phases
  gets real ones instead (a fresh token or user made for it); the stateful phase finds its own
  through the spec's links.
- Every answer's status is counted per operation and written, when the run ends, to the file
  `KEYGATE_FUZZ_STATS` names, so the Rust test can check that each operation got 2xx answers.

- The leak intakes hold no keygate token: GitLab's routes get the GitLab token
  (`KEYGATE_FUZZ_GITLAB_TOKEN`), and every second positive case of GitHub's gets one of the reports
  the Rust test signed (`KEYGATE_FUZZ_GITHUB_REPORTS`: Python's standard library has no ECDSA), with
  its headers; the others carry generated signatures, answered 401.

Environment: `KEYGATE_FUZZ_URL` (the server), `KEYGATE_FUZZ_ROOT_TOKEN` (the bootstrap token),
`KEYGATE_FUZZ_STATS` (where the counts go), `KEYGATE_FUZZ_GITLAB_TOKEN`, `KEYGATE_FUZZ_GITHUB_REPORTS`.
"""

import atexit
import collections
import itertools
import json
import os
import secrets
import threading
import urllib.error
import urllib.request

import schemathesis

BASE_URL = os.environ["KEYGATE_FUZZ_URL"].rstrip("/")
ROOT_TOKEN = os.environ["KEYGATE_FUZZ_ROOT_TOKEN"]
STATS_PATH = os.environ["KEYGATE_FUZZ_STATS"]
GITLAB_TOKEN = os.environ["KEYGATE_FUZZ_GITLAB_TOKEN"]
with open(os.environ["KEYGATE_FUZZ_GITHUB_REPORTS"], encoding="utf-8") as reports:
    # Signed reports: each body is exactly what `json.dumps` writes of it, as schemathesis sends it.
    GITHUB_REPORTS = itertools.cycle(json.load(reports))

GITHUB_PATH = "/api/v1/leaks/github"
GITLAB_PATHS = ("/api/v1/leaks/gitlab/revocable_token_types", "/api/v1/leaks/gitlab/revoke_tokens")

SESSION_PATH = "/api/v1/session"
TENANTS_PATH = "/api/v1/tenants"
# A generated cursor never names this database's change log: the hooks give half the positive
# cases a real one (cursors are not per tenant), without a wait, so that no case long-polls.
CHANGES_PATH = "/api/v1/replication/changes"
# Operations whose path parameter names a token; any native token id works on every surface.
TOKEN_ID_PATHS = (
    "/api/v1/tokens/{id}",
    "/api/v2/apiTokens/{id}",
    "/api/settings/api-tokens/{internalId}",
)
USER_ID_PATH = "/api/v1/users/{id}"
# Operations on one webhook endpoint: half the positive cases get a real endpoint (made for the
# case, subscribed to every event, with one delivery in its log, and removed after the case) and,
# for a redelivery, that delivery's id. Its URL is a closed port: deliveries fail and are retried.
WEBHOOK_PATHS = (
    "/api/v1/webhooks/{id}",
    "/api/v1/webhooks/{id}/deliveries",
    "/api/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
)
WEBHOOK_URL = "http://127.0.0.1:9/schemathesis"
# A tenant's policy: only its own admins reach it, so half the positive cases name the tenant.
POLICY_PATH = "/api/v1/tenants/{id}/policy"
# What a token refused by the tenant's policy names: a generated policy may bound the lifetime
# the minter's tokens (which never expire) would have.
POLICY_RULES = ("maxLifetimeSeconds", "requireExpiry")
# Operations whose body's `token` field is a token to look up, check or revoke.
TOKEN_BODY_OPERATIONS = {
    ("POST", "/api/v1/tokens/lookup"),
    ("POST", "/api/v2/apiTokens/lookup"),
    ("POST", "/api/v1/verify"),
    ("POST", "/api/revoke_token"),
}
# Valid values for the fields of create and replace bodies that generated data always breaks.
REALISTIC_BODIES = {
    ("POST", "/api/v1/tokens"): lambda: {"name": "schemathesis", "scopes": ["tokens:read"]},
    ("PUT", "/api/v1/tokens/{id}"): lambda: {"name": "schemathesis", "scopes": ["tokens:read"]},
    ("POST", "/api/v2/apiTokens"): lambda: {"name": "schemathesis", "scopes": ["apiTokens.read"]},
    ("PUT", "/api/v2/apiTokens/{id}"): lambda: {"name": "schemathesis", "scopes": ["apiTokens.read"]},
    ("POST", "/api/settings/api-tokens"): lambda: {
        "name": "schemathesis",
        "internalId": f"st-{secrets.token_hex(8)}",
        "accessGrantingToken": secrets.token_urlsafe(24),
    },
    ("PUT", "/api/settings/api-tokens/{internalId}"): lambda: {"name": "schemathesis"},
    ("POST", "/api/v1/users"): lambda: {
        "username": f"u{secrets.token_hex(6)}",
        "password": secrets.token_urlsafe(18),
        "role": "member",
    },
    ("PATCH", "/api/v1/users/{id}"): lambda: {"role": "member", "password": secrets.token_urlsafe(18)},
    ("POST", "/api/v1/webhooks"): lambda: {"url": WEBHOOK_URL, "events": ["*"]},
    ("PATCH", "/api/v1/webhooks/{id}"): lambda: {"url": WEBHOOK_URL, "events": ["token.created"]},
    # A generated hash is never a SHA-256 and a generated scope never in the catalogue: one fresh
    # hash, so that the import's 201 is reached too.
    ("POST", "/api/v1/tokens/import"): lambda: {
        "tokens": [{"hash": "sha256:" + secrets.token_hex(32), "name": "schemathesis",
                    "scopes": ["tokens:read"]}],
    },
}
# Fields whose generated values name nothing that exists, or lie in the past.
DROPPED_FIELDS = ("ownerId", "expiresAt", "expiresIn", "expirationDate", "metadata")


def call(method, path, token=None, body=None):
    """One request to keygate outside schemathesis: (status, JSON body or None)."""
    headers = {"Accept": "application/json"}
    data = None
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(BASE_URL + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw, status, cookies = response.read(), response.status, response.headers.get_all("Set-Cookie")
    except urllib.error.HTTPError as error:
        raw, status, cookies = error.read(), error.code, None
    return status, (json.loads(raw) if raw else None), cookies or []


def expect(status, body, wanted, what):
    if status != wanted:
        # The body is an error body or a refusal: it holds no secret.
        raise RuntimeError(f"{what}: expected {wanted}, got {status}: {body}")
    return body


class Tenant:
    """A tenant made for the run, its admin's password, and its admin token (the minter)."""

    def __init__(self, number):
        self.name = f"fuzz-{number}-{secrets.token_hex(4)}"
        self.password = secrets.token_urlsafe(18)
        status, body, _ = call(
            "POST",
            TENANTS_PATH,
            ROOT_TOKEN,
            {"name": self.name, "adminUsername": "admin", "adminPassword": self.password},
        )
        created = expect(status, body, 201, "creating a tenant with the bootstrap token")
        self.minter = created["adminToken"]
        status, body, _ = call("GET", "/api/v1/tokens/self", self.minter)
        # Every scope the tenant's admin holds; `*` would include `tenants:admin`, which it lacks.
        minter = expect(status, body, 200, "reading the new admin token")
        self.scopes = minter["scopes"]


class Fixtures:
    """What the hooks make for test cases; shared by schemathesis's worker threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tenant = None
        self.tenants_made = 0
        self.minted = 0

    def current(self, lost=None):
        """The tenant to work in; a new one if `lost` is still the current one."""
        with self.lock:
            if self.tenant is None or self.tenant is lost:
                self.tenants_made += 1
                self.tenant = Tenant(self.tenants_made)
            return self.tenant

    def in_tenant(self, method, path, body, wanted, what):
        """A request by the minter (`path` and `body` are functions of the tenant); when the
        minter was destroyed, again in a new tenant."""
        tenant = self.current()
        status, answer, cookies = call(method, path(tenant), tenant.minter, body(tenant))
        refused_by_policy = status == 422 and any(rule in str(answer) for rule in POLICY_RULES)
        if status in (401, 403) or refused_by_policy:
            tenant = self.current(lost=tenant)
            status, answer, cookies = call(method, path(tenant), tenant.minter, body(tenant))
        return tenant, expect(status, answer, wanted, what), cookies

    def mint(self, scopes):
        """A fresh token with these scopes: the created token object."""
        with self.lock:
            self.minted += 1
        return self.in_tenant(
            "POST",
            lambda _: "/api/v1/tokens",
            lambda _: {"name": "schemathesis", "scopes": scopes},
            201,
            "minting a token",
        )[1]

    def copy_of_minter(self):
        """A fresh token holding every scope of the minter (the admin role's, more than a hundred:
        a create may name as many as the scope catalogue holds)."""
        with self.lock:
            self.minted += 1
        create = (
            "POST",
            lambda _: "/api/v1/tokens",
            lambda t: {"name": "schemathesis", "scopes": t.scopes},
        )
        # A minter whose scopes schemathesis replaced (PUT) gets 403: `in_tenant` then starts
        # again in a new tenant.
        return self.in_tenant(*create, 201, "copying the minter")[1]

    def user(self):
        """A fresh member of the current tenant: its id."""
        return self.in_tenant(
            "POST",
            lambda _: "/api/v1/users",
            lambda _: {"username": f"u{secrets.token_hex(6)}", "password": secrets.token_urlsafe(18), "role": "member"},
            201,
            "creating a user",
        )[1]["id"]

    def webhook(self):
        """A fresh endpoint of the current tenant with one delivery in its log: (tenant, endpoint
        id, delivery id)."""
        tenant, created, _ = self.in_tenant(
            "POST",
            lambda _: "/api/v1/webhooks",
            lambda _: {"url": WEBHOOK_URL, "events": ["*"], "description": "schemathesis"},
            201,
            "adding a webhook endpoint",
        )
        # A token's creation is the event; its own token is revoked at once.
        self.mint(["tokens:read"])
        status, body, _ = call("GET", f"/api/v1/webhooks/{created['id']}/deliveries", tenant.minter)
        deliveries = expect(status, body, 200, "listing the endpoint's deliveries")["items"]
        return tenant, created["id"], (deliveries[0]["id"] if deliveries else 0)

    def login(self):
        """A web session of the current tenant's admin: (cookie name=value, CSRF token)."""
        tenant = self.current()
        status, body, cookies = call(
            "POST", SESSION_PATH, body={"tenant": tenant.name, "username": "admin", "password": tenant.password}
        )
        if status == 401:
            # Schemathesis deleted the admin user, or changed its password.
            tenant = self.current(lost=tenant)
            status, body, cookies = call(
                "POST", SESSION_PATH, body={"tenant": tenant.name, "username": "admin", "password": tenant.password}
            )
        body = expect(status, body, 200, "logging in as the tenant's admin")
        cookie = next(c.split(";")[0] for c in cookies if c.startswith("keygate_session="))
        return cookie, body["csrfToken"]

    def cursor(self):
        """Where the replicas' change stream stands now."""
        status, body, _ = call("GET", "/api/v1/replication/snapshot?limit=1", ROOT_TOKEN)
        return expect(status, body, 200, "taking a snapshot with the bootstrap token")["cursor"]

    def root_scoped(self, scopes):
        """A token of tenant `default`, minted by the bootstrap token with these scopes."""
        status, body, _ = call("POST", "/api/v1/tokens", ROOT_TOKEN, {"name": "schemathesis-root", "scopes": scopes})
        return expect(status, body, 201, "minting a token with the bootstrap token")["token"]


FIXTURES = Fixtures()
STATUSES = collections.defaultdict(collections.Counter)
SUBSTITUTIONS = collections.Counter()
STATS_LOCK = threading.Lock()
CASE_NUMBERS = collections.defaultdict(itertools.count)
# Endpoints made for a case, removed after it (a tenant may have at most 100).
MADE_ENDPOINTS = {}


def operation_key(case):
    return f"{case.operation.method.upper()} {case.operation.path}"


@schemathesis.auth(refresh_interval=None)
class FreshCredentials:
    """Fresh credentials for every test case (no caching: a case may destroy its own)."""

    def get(self, case, context):
        path = context.operation.path
        if path == GITHUB_PATH:
            return {}
        if path in GITLAB_PATHS:
            return {"gitlab": GITLAB_TOKEN}
        if path == TENANTS_PATH:
            return {"token": FIXTURES.root_scoped(["tenants:admin"])}
        if path == SESSION_PATH and case.method.upper() != "POST":
            cookie, csrf = FIXTURES.login()
            return {"cookie": cookie, "csrf": csrf}
        return {"token": FIXTURES.copy_of_minter()["token"]}

    def set(self, case, data, context):
        case.headers = case.headers or {}
        if not data:
            return
        if "gitlab" in data:
            case.headers["Authorization"] = data["gitlab"]
        elif "token" in data:
            case.headers["Authorization"] = f"Bearer {data['token']}"
        else:
            case.headers["Cookie"] = data["cookie"]
            case.headers["X-CSRF-Token"] = data["csrf"]


def wants_real_values(case):
    """Every second positive case of the fuzzing and coverage phases, per operation."""
    meta = getattr(case, "_meta", None)
    if meta is None or meta.phase.name.value not in ("fuzzing", "coverage", "examples"):
        return False
    if meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return False
    return next(CASE_NUMBERS[operation_key(case)]) % 2 == 0


@schemathesis.hook
def before_call(context, case, kwargs):
    if not wants_real_values(case):
        return
    method, path = case.operation.method.upper(), case.operation.path
    substituted = False
    if path in TOKEN_ID_PATHS:
        name = "internalId" if "{internalId}" in path else "id"
        if isinstance(case.path_parameters, dict) and name in case.path_parameters:
            # A narrow token: the case's own token holds all its scopes, so it may change it.
            case.path_parameters[name] = FIXTURES.mint(["tokens:read"])["id"]
            substituted = True
    elif path == USER_ID_PATH:
        if isinstance(case.path_parameters, dict) and "id" in case.path_parameters:
            case.path_parameters["id"] = FIXTURES.user()
            substituted = True
    elif path in WEBHOOK_PATHS:
        if isinstance(case.path_parameters, dict) and "id" in case.path_parameters:
            tenant, endpoint, delivery = FIXTURES.webhook()
            case.path_parameters["id"] = endpoint
            if "deliveryId" in case.path_parameters:
                case.path_parameters["deliveryId"] = delivery
            with STATS_LOCK:
                MADE_ENDPOINTS[id(case)] = (tenant, endpoint)
            substituted = True
    elif path == POLICY_PATH:
        if isinstance(case.path_parameters, dict) and "id" in case.path_parameters:
            case.path_parameters["id"] = FIXTURES.current().name
            substituted = True
    if (method, path) == ("POST", GITHUB_PATH):
        report = next(GITHUB_REPORTS)
        case.body = json.loads(report["body"])
        case.headers = case.headers or {}
        case.headers["Github-Public-Key-Identifier"] = report["keyId"]
        case.headers["Github-Public-Key-Signature"] = report["signature"]
        substituted = True
    if (method, path) == ("POST", GITLAB_PATHS[1]) and isinstance(case.body, list) and case.body:
        if isinstance(case.body[0], dict):
            case.body[0]["token"] = FIXTURES.mint(["tokens:read"])["token"]
            substituted = True
    if (method, path) in TOKEN_BODY_OPERATIONS and isinstance(case.body, dict) and "token" in case.body:
        case.body["token"] = FIXTURES.mint(["tokens:read"])["token"]
        substituted = True
    if (method, path) == ("GET", CHANGES_PATH) and isinstance(case.query, dict):
        case.query["after"] = FIXTURES.cursor()
        case.query["wait"] = 0
        substituted = True
    if (method, path) == ("POST", SESSION_PATH) and isinstance(case.body, dict):
        tenant = FIXTURES.current()
        case.body.update({"tenant": tenant.name, "username": "admin", "password": tenant.password})
        substituted = True
    body_fields = REALISTIC_BODIES.get((method, path))
    if body_fields is not None and isinstance(case.body, dict):
        # Generated scope names are never in the catalogue, and generated names and lifetimes
        # break the documented bounds: keep the rest of the generated body, make these valid.
        for field in DROPPED_FIELDS:
            case.body.pop(field, None)
        case.body.update(body_fields())
        substituted = True
    if substituted:
        with STATS_LOCK:
            SUBSTITUTIONS[f"{method} {path}"] += 1


@schemathesis.hook
def after_call(context, case, response):
    with STATS_LOCK:
        STATUSES[operation_key(case)][str(response.status_code)] += 1
    # The case's own token is revoked once it has served: thousands of leftovers would make
    # every later list slow (Instana's list has no paging) and test nothing new.
    authorization = (case.headers or {}).get("Authorization", "")
    if case.operation.path == POLICY_PATH and case.method.upper() == "PUT" and response.status_code == 200:
        # Back to the defaults, so that the next mints are not refused by a generated policy.
        call("PUT", POLICY_PATH.replace("{id}", FIXTURES.current().name), authorization.removeprefix("Bearer "), {})
    with STATS_LOCK:
        made = MADE_ENDPOINTS.pop(id(case), None)
    if made is not None:
        tenant, endpoint = made
        call("DELETE", f"/api/v1/webhooks/{endpoint}", tenant.minter)
    elif case.operation.path == "/api/v1/webhooks" and response.status_code == 201:
        created = response.json()
        call("DELETE", f"/api/v1/webhooks/{created['id']}", authorization.removeprefix("Bearer "))
    if authorization.startswith("Bearer ") and case.operation.path not in (TENANTS_PATH, *GITLAB_PATHS):
        call("DELETE", "/api/v1/tokens/self", authorization.removeprefix("Bearer "))


@atexit.register
def write_stats():
    with STATS_LOCK:
        stats = {
            "statuses": {op: dict(counts) for op, counts in STATUSES.items()},
            "substituted": dict(SUBSTITUTIONS),
            "tenantsMade": FIXTURES.tenants_made,
            "tokensMinted": FIXTURES.minted,
        }
    with open(STATS_PATH, "w", encoding="utf-8") as out:
        json.dump(stats, out, indent=1, sort_keys=True)
