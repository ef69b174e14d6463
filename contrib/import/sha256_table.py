#!/usr/bin/env python3
"""Imports API keys kept as SHA-256 hashes in a SQLite table into keygate, so that their holders
keep using them: POST /api/v1/tokens/import, 10 000 keys a request, each request all or nothing.

The query gives one row a key: its hash (hex, base64 or base64url), a name, and optionally the
owner id, your own id for its holder (externalId) and its expiry (RFC 3339). Python's standard
library only. See docs/migrating.md.

    KEYGATE_URL=https://keygate.example.com KEYGATE_TOKEN=kg_... \\
      python3 sha256_table.py legacy.db \\
        "SELECT key_sha256, label FROM api_keys WHERE NOT revoked ORDER BY id" \\
        --scope metrics:read

The token in KEYGATE_TOKEN needs tokens:admin and every scope given.
"""

import argparse
import json
import os
import sqlite3
import sys
import urllib.error
import urllib.request

BATCH = 10_000


def rows_to_tokens(rows, scopes):
    """The import request's entries, one a row: (hash, name[, owner_id[, external_id[, expires_at]]])."""
    tokens = []
    for row in rows:
        hash_, name, *rest = row
        entry = {"hash": "sha256:" + str(hash_).strip(), "name": str(name), "scopes": scopes}
        for field, value in zip(("ownerId", "externalId", "expiresAt"), rest):
            if value is not None:
                entry[field] = str(value)
        tokens.append(entry)
    return tokens


def post(url, token, body):
    request = urllib.request.Request(
        url.rstrip("/") + "/api/v1/tokens/import",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as e:
        # keygate's error names the offending entry, e.g. tokens[3].hash: duplicate of tokens[1].
        raise SystemExit(f"refused ({e.code}): {e.read().decode(errors='replace')}") from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="the SQLite file holding the hashes")
    parser.add_argument("query", help="SELECT hash, name[, owner_id, external_id, expires_at] ...")
    parser.add_argument("--scope", action="append", required=True, help="a scope every key gets")
    parser.add_argument("--dry-run", action="store_true", help="print the first request, send nothing")
    args = parser.parse_args()

    db = sqlite3.connect(f"file:{args.database}?mode=ro", uri=True)
    tokens = rows_to_tokens(db.execute(args.query), args.scope)
    if args.dry_run:
        json.dump({"tokens": tokens[:BATCH]}, sys.stdout, indent=2)
        return
    url, token = os.environ["KEYGATE_URL"], os.environ["KEYGATE_TOKEN"]
    done = 0
    for start in range(0, len(tokens), BATCH):
        answer = post(url, token, {"tokens": tokens[start : start + BATCH]})
        done += answer["imported"]
        # A later batch refused leaves the earlier ones imported: say where to resume.
        print(f"imported rows {start}-{start + answer['imported'] - 1}", flush=True)
    print(f"imported {done} keys")


if __name__ == "__main__":
    main()
