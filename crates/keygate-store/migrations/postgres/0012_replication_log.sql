-- The change stream replicas follow (`GET /api/v1/replication/changes`): one row per token a
-- write batch changed, added in the batch's own transaction. A replica's cursor is a single
-- number, so numbers must follow commit order with no gaps. On PostgreSQL, where many nodes
-- write at once, a batch does not number its rows itself (that would make every token write
-- of every node wait for the previous one's commit): its rows arrive with `seq` NULL, and a
-- reader of the stream numbers every committed unnumbered row in a short transaction of its
-- own that holds the row of `replication_head`, so numbering runs one at a time and only ever
-- sees committed rows. Rows older than the retention are pruned; `pruned_through` says up to
-- where, so that an older cursor is refused and its replica takes a new snapshot. `log_id`
-- tells cursors of this database from those of another one.
CREATE TABLE replication_head (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    log_id         TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO replication_head (id, log_id, seq, pruned_through)
VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 12), 0, 0);

CREATE TABLE replication_log (
    id        BIGSERIAL PRIMARY KEY,
    seq       BIGINT UNIQUE,
    tenant_id TEXT NOT NULL,
    hash      BYTEA NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX replication_log_by_tenant ON replication_log (tenant_id, seq);
CREATE INDEX replication_log_by_time ON replication_log (at);
CREATE INDEX replication_log_unnumbered ON replication_log (id) WHERE seq IS NULL;
