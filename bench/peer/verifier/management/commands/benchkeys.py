"""Create API keys for the benchmark with the library's own APIKey.objects.create_key.

    manage.py benchkeys [--count N --out FILE]

Prints `KEY=<key>` as its last stdout line: the one "primary" key, kept in
PEER_DATA_DIR/primary.key and reused while the database still accepts it, so
re-running is idempotent. With --count N it also replaces the previous bulk
keys with N fresh ones and writes them, one per line, to FILE.
"""
import os
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework_api_key.models import APIKey

PRIMARY_NAME = "bench-primary"
BULK_NAME = "bench-bulk"


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class Command(BaseCommand):
    help = "Create the benchmark's API keys (one primary key, optionally N more)."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=0, help="number of bulk keys")
        parser.add_argument("--out", help="file to write the bulk keys to, one per line")

    def handle(self, *args, count, out, **options):
        if count < 0:
            raise CommandError("--count must be >= 0")
        if count and not out:
            raise CommandError("--count needs --out FILE")

        primary_file = settings.DATA_DIR / "primary.key"
        key = None
        if primary_file.exists():
            key = primary_file.read_text().strip() or None
            if key and not APIKey.objects.is_valid(key):
                key = None
        if key is None:
            _, key = APIKey.objects.create_key(name=PRIMARY_NAME)
            _write_private(primary_file, key + "\n")

        if count:
            started = time.perf_counter()
            keys = []
            # One transaction: SQLite would otherwise sync the file per key.
            with transaction.atomic():
                APIKey.objects.filter(name=BULK_NAME).delete()
                for _ in range(count):
                    keys.append(APIKey.objects.create_key(name=BULK_NAME)[1])
            _write_private(out, "\n".join(keys) + "\n")
            elapsed = time.perf_counter() - started
            print(f"created {count} keys in {elapsed:.2f}s -> {out}", file=sys.stderr)

        self.stdout.write(f"KEY={key}")
