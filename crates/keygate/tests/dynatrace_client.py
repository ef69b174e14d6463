"""Drives keygate's Dynatrace-compatible token API with the unmodified `dt` client (PyPI `dt`
1.2.2): create, list across more than one page, get, update scopes, lookup, delete.

Run by crates/keygate/tests/dynatrace.rs with KEYGATE_URL and KEYGATE_TOKEN (a token holding
`*`). Exits non-zero on any failure.
"""

import datetime
import os
import sys
import traceback

from dynatrace import Dynatrace
from dynatrace.environment_v2.tokens_api import (
    SCOPE_API_TOKENS_READ,
    SCOPE_API_TOKENS_WRITE,
    SCOPE_METRICS_READ,
    ApiTokenUpdate,
)

URL = os.environ["KEYGATE_URL"]
TOKEN = os.environ["KEYGATE_TOKEN"]
BULK = 205  # more than the default page size (200), so listing takes two pages


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def main():
    dt = Dynatrace(URL, TOKEN)
    # Count the list requests the client makes, to see it follow nextPageKey.
    list_requests = []
    session = dt._Dynatrace__http_client.session
    session.hooks["response"].append(
        lambda r, *a, **k: list_requests.append(r.url) if "/api/v2/apiTokens?" in r.url or r.url.endswith("/api/v2/apiTokens") else None
    )

    # Create (the client sends personalAccessToken: null, and expirationDate as given).
    created = dt.tokens.create(
        name="dt client main",
        scopes=[SCOPE_API_TOKENS_READ, SCOPE_API_TOKENS_WRITE, SCOPE_METRICS_READ],
        expiration_date="now+14d",
    )
    check(created.id and created.token, f"create returned id {created.id} and a token")
    check(created.token.startswith(created.id), "the token starts with its id")
    check(isinstance(created.expiration_date, datetime.datetime), "expirationDate parses as a datetime")
    days = (created.expiration_date - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)).total_seconds() / 86400
    check(13.9 < days < 14.1, f"expirationDate is 14 days away ({days:.3f})")

    plain = dt.tokens.create(name="dt client plain", scopes=[SCOPE_METRICS_READ])
    check(plain.expiration_date is None, "no expirationDate when none was asked for")

    bulk_ids = set()
    for i in range(BULK):
        bulk_ids.add(dt.tokens.create(name=f"dt bulk {i:03}", scopes=[SCOPE_METRICS_READ]).id)
    check(len(bulk_ids) == BULK, f"created {BULK} more tokens")

    # List: default page size 200, so the client must follow nextPageKey.
    list_requests.clear()
    listed = list(dt.tokens.list())
    ids = [t.id for t in listed]
    check(len(ids) == len(set(ids)), "no token is listed twice")
    check(bulk_ids | {created.id, plain.id} <= set(ids), f"every created token is listed ({len(ids)} in all)")
    check(len(list_requests) >= 2, f"listing took {len(list_requests)} requests (paging with nextPageKey)")
    check(all(t.creation_date is not None for t in listed), "creationDate parses on every listed token")
    order = [t.creation_date for t in listed]
    check(order == sorted(order, reverse=True), "sorted newest first by default")

    # Selector, fields and sort.
    selected = list(
        dt.tokens.list(
            api_token_selector=f'scope("{SCOPE_API_TOKENS_WRITE}")',
            fields="+scopes,+expirationDate,-owner",
            sort="name",
        )
    )
    names = [t.name for t in selected]
    check("dt client main" in names and not any(n.startswith("dt bulk") for n in names), "selector scope(...) filters")
    check(names == sorted(names, key=str.lower), "sort=name sorts by name")
    mine = next(t for t in selected if t.id == created.id)
    check(set(mine.scopes) == {SCOPE_API_TOKENS_READ, SCOPE_API_TOKENS_WRITE, SCOPE_METRICS_READ}, "fields=+scopes shows scopes")
    check(mine.owner is None, "fields=-owner hides owner")

    # The new token works with the client too.
    dt2 = Dynatrace(URL, created.token)
    own = dt2.tokens.get(created.id)
    check(own.name == "dt client main", "the created token authenticates and reads itself")

    # Get.
    t = dt.tokens.get(created.id)
    check(t.id == created.id and t.name == "dt client main", "get returns the token")
    check(t.enabled is True, "enabled")
    check(isinstance(t.creation_date, datetime.datetime), "creationDate is a datetime")
    check(t.expiration_date == created.expiration_date, "expirationDate as created")
    check(t.owner, f"owner is {t.owner}")
    check(t.personal_access_token is True, "a token made with a user's token is personal")

    # Update scopes (and name): scopes sent replace the set.
    r = dt.tokens.put(created.id, ApiTokenUpdate(name="dt client renamed", scopes=[SCOPE_METRICS_READ, "logs.read"]))
    check(r.status_code == 204, "put answers 204")
    t = dt.tokens.get(created.id)
    check(sorted(t.scopes) == ["logs.read", SCOPE_METRICS_READ], f"scopes replaced: {t.scopes}")
    check(t.name == "dt client renamed", "renamed")
    r = dt.tokens.put(created.id, ApiTokenUpdate(enabled=False))
    check(r.status_code == 204 and dt.tokens.get(created.id).enabled is False, "disabled")

    # Lookup by the token itself.
    found = dt.tokens.lookup(created.token)
    check(found.id == created.id and found.name == "dt client renamed", "lookup finds the token by its secret")

    # Delete, by id and through the listed object.
    r = dt.tokens.delete(created.id)
    check(r.status_code == 204, "delete answers 204")
    try:
        dt.tokens.get(created.id)
        raise AssertionError("get after delete should fail")
    except AssertionError:
        raise
    except Exception as e:
        check("404" in str(e), "get after delete is 404")
    victim = next(t for t in listed if t.id in bulk_ids)
    check(victim.delete().status_code == 204, "ApiToken.delete() of a listed token answers 204")

    # A wrong token: the client raises, with Dynatrace's error body.
    try:
        Dynatrace(URL, "not-a-real-token-0123456789").tokens.get(plain.id)
        raise AssertionError("a wrong token should fail")
    except AssertionError:
        raise
    except Exception as e:
        check("401" in str(e) and '"error"' in str(e), "a wrong token gets 401 with Dynatrace's body")

    print("dt client: all steps passed")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
