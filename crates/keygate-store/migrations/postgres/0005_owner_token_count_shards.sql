-- Migration 0004 kept one count row per owner, and the upsert on it locks that row until the
-- transaction commits: every create and revoke of one owner waited for the previous one's
-- commit, WAL flush included, so concurrent writes could no longer share flushes (one owner, 8
-- clients: 310-456 creates/s with that trigger, 1,507-1,521 without). Now each database connection counts
-- in a shard row of its own (its backend pid modulo 64), so connections rarely wait for each
-- other, and a create reads the sum of the owner's shards.
--
-- The price: creates of one owner committing at the same moment on different connections do
-- not see each other's increments, so the bound can be passed by at most as many creates as
-- run at once (README, --max-tokens-per-owner). SQLite has one writer and stays exact.
ALTER TABLE owner_token_counts ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE owner_token_counts DROP CONSTRAINT owner_token_counts_pkey;
ALTER TABLE owner_token_counts ADD PRIMARY KEY (tenant_id, owner_id, shard);

CREATE OR REPLACE FUNCTION count_owner_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s SMALLINT := pg_backend_pid() % 64;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO owner_token_counts (tenant_id, owner_id, shard, tokens)
            VALUES (OLD.tenant_id, OLD.owner_id, s, -1)
            ON CONFLICT (tenant_id, owner_id, shard)
            DO UPDATE SET tokens = owner_token_counts.tokens - 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO owner_token_counts (tenant_id, owner_id, shard, tokens)
            VALUES (NEW.tenant_id, NEW.owner_id, s, 1)
            ON CONFLICT (tenant_id, owner_id, shard)
            DO UPDATE SET tokens = owner_token_counts.tokens + 1;
    END IF;
    RETURN NULL;
END;
$$;
