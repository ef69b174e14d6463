"""Unkey's own Python client (unkey-py), unmodified, against keygate's Unkey surface: the life of
keys from creation to deletion. Run by crates/keygate/tests/unkey.rs with KEYGATE_URL and
KEYGATE_TOKEN (a root key holding `*`); the server knows the scopes documents:read and
documents:write. Every step checks what the client returned; the last line says all passed."""

import base64
import hashlib
import os
import sys

from unkey.py import Unkey, errors

URL = os.environ["KEYGATE_URL"]
ROOT = os.environ["KEYGATE_TOKEN"]
API = "default"

unkey = Unkey(root_key=ROOT, server_url=URL)


def step(name):
    print(f"step: {name}", flush=True)


def expect(what, got, wanted):
    if got != wanted:
        sys.exit(f"{what}: expected {wanted!r}, got {got!r}")


def verify(key, **kw):
    res = unkey.keys.verify_key(key=key, **kw)
    if not res.meta.request_id:
        sys.exit("verifyKey answered without meta.requestId")
    return res.data


step("createKey with credits, a rate limit, permissions, meta and an externalId")
created = unkey.keys.create_key(
    api_id=API,
    name="py-client",
    external_id="customer_42",
    meta={"plan": "pro"},
    permissions=["documents:read"],
    credits={"remaining": 2},
    ratelimits=[{"name": "burst", "limit": 2, "duration": 60000}],
).data
key, key_id = created.key, created.key_id
expect("the key id begins the key", key.startswith(key_id + "_"), True)

step("verifyKey: VALID, and the credits go down")
v = verify(key)
expect("code", v.code, "VALID")
expect("valid", v.valid, True)
expect("keyId", v.key_id, key_id)
expect("credits left", v.credits, 1)
expect("identity", v.identity.external_id, "customer_42")
expect("meta", v.meta, {"plan": "pro"})

step("verifyKey: USAGE_EXCEEDED once the credits run out")
expect("code", verify(key).code, "VALID")
v = verify(key)
expect("code", v.code, "USAGE_EXCEEDED")
expect("valid", v.valid, False)

step("updateCredits: set, and the key verifies again")
credits = unkey.keys.update_credits(key_id=key_id, operation="set", value=10).data
expect("remaining", credits.remaining, 10)
credits = unkey.keys.update_credits(key_id=key_id, operation="increment", value=5).data
expect("remaining after increment", credits.remaining, 15)
expect("code", verify(key).code, "VALID")
expect("getKey counts the credit just spent", unkey.keys.get_key(key_id=key_id).data.credits.remaining, 14)

step("verifyKey: RATE_LIMITED when the named limit is spent")
for _ in range(2):
    v = verify(key, ratelimits=[{"name": "burst"}])
    expect("code", v.code, "VALID")
v = verify(key, ratelimits=[{"name": "burst"}])
expect("code", v.code, "RATE_LIMITED")
expect("the limit is reported exceeded", [r.exceeded for r in v.ratelimits if r.name == "burst"], [True])

step("verifyKey: a limit the key does not have is refused (412)")
try:
    verify(key, ratelimits=[{"name": "nonexistent"}])
    sys.exit("an unknown rate limit was accepted")
except errors.APIError as e:
    expect("status", e.status_code, 412)

step("verifyKey: permission queries")
expect("code", verify(key, permissions="documents:read OR documents:write").code, "VALID")
v = verify(key, permissions="documents:read AND documents:write")
expect("code", v.code, "INSUFFICIENT_PERMISSIONS")
expect("valid", v.valid, False)

step("getKey")
k = unkey.keys.get_key(key_id=key_id).data
expect("keyId", k.key_id, key_id)
expect("name", k.name, "py-client")
expect("permissions", k.permissions, ["documents:read"])
expect("meta", k.meta, {"plan": "pro"})
expect("identity", k.identity.external_id, "customer_42")
expect("rate limits", [(r.name, r.limit, r.duration) for r in k.ratelimits], [("burst", 2, 60000)])
expect("enabled", k.enabled, True)

step("updateKey: disable, DISABLED, enable again")
unkey.keys.update_key(key_id=key_id, enabled=False)
expect("code", verify(key).code, "DISABLED")
unkey.keys.update_key(key_id=key_id, enabled=True, name="py-client-renamed", meta={"plan": "team"})
k = unkey.keys.get_key(key_id=key_id).data
expect("renamed", k.name, "py-client-renamed")
expect("meta", k.meta, {"plan": "team"})

step("addPermissions, removePermissions, setPermissions")
perms = unkey.keys.add_permissions(key_id=key_id, permissions=["documents:write"]).data
expect("permissions", sorted(p.slug for p in perms), ["documents:read", "documents:write"])
expect("code", verify(key, permissions="documents:read AND documents:write").code, "VALID")
perms = unkey.keys.remove_permissions(key_id=key_id, permissions=["documents:write"]).data
expect("permissions", [p.slug for p in perms], ["documents:read"])
perms = unkey.keys.set_permissions(key_id=key_id, permissions=["documents:write"]).data
expect("permissions", [p.slug for p in perms], ["documents:write"])
expect("code", verify(key, permissions="documents:read").code, "INSUFFICIENT_PERMISSIONS")
unkey.keys.set_permissions(key_id=key_id, permissions=["documents:read"])

step("rerollKey with an overlap: old and new both VALID")
rerolled = unkey.keys.reroll_key(key_id=key_id, expiration=60000).data
expect("a new key", rerolled.key != key, True)
expect("old key during the overlap", verify(key).code, "VALID")
expect("new key", verify(rerolled.key).code, "VALID")

step("whoami")
me = unkey.keys.whoami(key=rerolled.key).data
expect("keyId", me.key_id, rerolled.key_id)
expect("name", me.name, "py-client-renamed")

step("apis.listKeys, two at a time")
extra = [unkey.keys.create_key(api_id=API, name=f"page-{i}").data.key_id for i in range(3)]
seen, cursor, pages = [], None, 0
while True:
    res = unkey.apis.list_keys(api_id=API, limit=2, cursor=cursor).result
    pages += 1
    if len(res.data) > 2:
        sys.exit(f"a page of {len(res.data)} keys for limit 2")
    seen += [k.key_id for k in res.data]
    if not res.pagination.has_more:
        break
    cursor = res.pagination.cursor
for wanted in [key_id, rerolled.key_id, *extra]:
    expect(f"{wanted} listed", wanted in seen, True)
expect("no key twice", len(seen), len(set(seen)))
expect("more than one page", pages > 1, True)

step("migrateKeys: a key hashed elsewhere verifies")
legacy = "legacy_sk_7f3a9c2e5b1d4f60a8e2"
digest = base64.b64encode(hashlib.sha256(legacy.encode()).digest()).decode()
migrated = unkey.keys.migrate_keys(
    migration_id="legacy-system",
    api_id=API,
    keys=[{"hash": digest, "name": "legacy", "externalId": "customer_7"}],
).data
expect("failed", migrated.failed, [])
expect("hash", [m.hash for m in migrated.migrated], [digest])
v = verify(legacy)
expect("migrated key", v.code, "VALID")
expect("migrated key id", v.key_id, migrated.migrated[0].key_id)
again = unkey.keys.migrate_keys(migration_id="legacy-system", api_id=API, keys=[{"hash": digest}]).data
expect("the same hash again fails", again.failed, [digest])

step("deleteKey: NOT_FOUND after")
unkey.keys.delete_key(key_id=rerolled.key_id)
expect("deleted key", verify(rerolled.key).code, "NOT_FOUND")
try:
    unkey.keys.get_key(key_id=rerolled.key_id)
    sys.exit("a deleted key was found")
except errors.NotFoundErrorResponse as e:
    expect("status", e.status_code, 404)

step("a refused field is named")
try:
    unkey.keys.create_key(api_id=API, roles=["admin"])
    sys.exit("roles were accepted")
except errors.BadRequestErrorResponse as e:
    expect("location", e.data.error.errors[0].location, "body.roles")

print("unkey-py: all steps passed")
