-- The change stream replicas follow (`GET /api/v1/replication/changes`). Every write batch that
-- changes tokens takes the next numbers from `replication_head.seq` and adds one row per changed
-- token here, in its own transaction: SQLite has one writer, so numbers are handed out in commit
-- order with no gaps, and a replica's cursor is one number. (PostgreSQL numbers them after the
-- commit instead: see its migration.) Rows older than the retention are pruned; `pruned_through`
-- says up to where, so that an older cursor is refused and its replica takes a new snapshot.
-- `log_id` tells cursors of this database from those of another one.
CREATE TABLE replication_head (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    log_id         TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO replication_head (id, log_id, seq, pruned_through)
VALUES (1, lower(hex(randomblob(6))), 0, 0);

CREATE TABLE replication_log (
    seq       BIGINT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    hash      BLOB NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX replication_log_by_tenant ON replication_log (tenant_id, seq);
CREATE INDEX replication_log_by_time ON replication_log (at);
