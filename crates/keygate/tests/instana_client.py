"""Drives keygate's Instana-compatible token API with the unmodified `instana-client` package.

Run by crates/keygate/tests/instana.rs with:
  KEYGATE_URL      the server, e.g. http://127.0.0.1:8080
  KEYGATE_TOKEN    a token that may manage tokens (the bootstrap token)
  INSTANA_SECRET   the accessGrantingToken to choose for the token made, changed and deleted
  INSTANA_KEEP_SECRET  the accessGrantingToken of a second token, left in place for the test
Prints one line per step and `INSTANA CLIENT OK` at the end; any failure exits non-zero.
"""

import os
import sys

# This file's name is the package's: never import it in place of the package (the test also
# runs it with `python -I`, which leaves the script's directory out of sys.path).
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import instana_client  # noqa: E402
from instana_client.rest import ApiException  # noqa: E402

URL = os.environ["KEYGATE_URL"]
TOKEN = os.environ["KEYGATE_TOKEN"]
SECRET = os.environ["INSTANA_SECRET"]
KEEP_SECRET = os.environ["INSTANA_KEEP_SECRET"]
INTERNAL_ID = "ci-instana-token-1"
KEEP_ID = "ci-instana-keep"


def api_for(token):
    configuration = instana_client.Configuration(host=URL)
    configuration.api_key["ApiKeyAuth"] = token
    configuration.api_key_prefix["ApiKeyAuth"] = "apiToken"
    return instana_client.APITokenApi(instana_client.ApiClient(configuration))


def check(cond, what):
    if not cond:
        print("FAILED: " + what, flush=True)
        sys.exit(1)
    print("ok: " + what, flush=True)


api = api_for(TOKEN)

# 1. list: the bootstrap token is there, under its keygate id, with every flag (it holds `*`).
tokens = api.get_api_tokens()
check(len(tokens) >= 1, "list has the bootstrap token (%d tokens)" % len(tokens))
boot = tokens[-1]
check(boot.internal_id.startswith("kg_"), "a token made elsewhere goes by its keygate id")
check(boot.can_configure_api_tokens is True and boot.can_view_audit_log is True,
      "a token holding * shows every flag")

# 2. create with a chosen internalId, a chosen secret and some permissions.
created = api.post_api_token(instana_client.ApiToken(
    access_granting_token=SECRET,
    internal_id=INTERNAL_ID,
    name="ci token",
    can_view_audit_log=True,
    can_configure_users=True,
))
check(created.internal_id == INTERNAL_ID, "create keeps the chosen internalId")
check(created.name == "ci token", "create keeps the name")
check(created.can_view_audit_log is True and created.can_configure_users is True,
      "create sets the permissions sent")
check(created.can_configure_agents is False, "a permission not sent is false")
check(created.access_granting_token != SECRET and created.access_granting_token.endswith("_****"),
      "the secret is masked in the answer: %s" % created.access_granting_token)
check(isinstance(created.created_on, int) and created.created_on > 1_600_000_000_000,
      "createdOn is epoch milliseconds")

# 3. get.
got = api.get_api_token(INTERNAL_ID)
check(got.internal_id == INTERNAL_ID and got.name == "ci token" and got.can_view_audit_log,
      "get returns the token")
check(got.access_granting_token == created.access_granting_token, "get masks the secret too")

# 4. put: rename and change the permissions.
put = api.put_api_token(INTERNAL_ID, instana_client.ApiToken(
    access_granting_token=got.access_granting_token,
    internal_id=INTERNAL_ID,
    name="ci token renamed",
    can_view_logs=True,
))
check(put.name == "ci token renamed", "put renames")
check(put.can_view_logs is True and put.can_view_audit_log is False
      and put.can_configure_users is False, "put replaces the permissions")

# 5. list shows the change; a second token is created to outlive this script.
api.post_api_token(instana_client.ApiToken(
    access_granting_token=KEEP_SECRET, internal_id=KEEP_ID, name="kept", can_view_logs=True))
listed = {t.internal_id: t for t in api.get_api_tokens()}
check(INTERNAL_ID in listed and listed[INTERNAL_ID].name == "ci token renamed"
      and listed[INTERNAL_ID].can_view_logs is True, "list shows the renamed token")
check(KEEP_ID in listed, "list shows the second token")

# 6. delete, then 7. get answers 404.
api.delete_api_token(INTERNAL_ID)
check(True, "delete")
try:
    api.get_api_token(INTERNAL_ID)
    check(False, "get after delete fails")
except ApiException as e:
    check(e.status == 404, "get after delete is 404 (got %s)" % e.status)
check(INTERNAL_ID not in {t.internal_id for t in api.get_api_tokens()}, "list no longer has it")
try:
    api.post_api_token(instana_client.ApiToken(
        access_granting_token=SECRET + "-again", internal_id=INTERNAL_ID, name="again"))
    check(False, "a deleted token's internalId is refused")
except ApiException as e:
    check(e.status == 409, "a deleted token's internalId is not given again (got %s)" % e.status)

# 8. a wrong token is refused with 401 and Instana's body.
try:
    api_for("this-is-not-a-valid-token-at-all").get_api_tokens()
    check(False, "a wrong token is refused")
except ApiException as e:
    check(e.status == 401, "a wrong token gets 401 (got %s)" % e.status)
    check("Invalid API token" in (e.body or ""), "the 401 body says Invalid API token")

print("INSTANA CLIENT OK", flush=True)
