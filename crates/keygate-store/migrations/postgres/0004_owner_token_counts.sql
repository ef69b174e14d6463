-- How many tokens each owner holds, kept by triggers on every path that adds, removes or moves a
-- token, so that the bound on tokens per owner (`--max-tokens-per-owner`) costs a create one row
-- read rather than a count of the owner's tokens. The upsert locks the owner's row until the
-- transaction ends, so concurrent creates for one owner on several nodes cannot overshoot.
CREATE TABLE owner_token_counts (
    tenant_id  TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    tokens     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, owner_id)
);

INSERT INTO owner_token_counts (tenant_id, owner_id, tokens)
    SELECT tenant_id, owner_id, COUNT(*) FROM tokens GROUP BY tenant_id, owner_id;

CREATE FUNCTION count_owner_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE owner_token_counts SET tokens = tokens - 1
            WHERE tenant_id = OLD.tenant_id AND owner_id = OLD.owner_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO owner_token_counts (tenant_id, owner_id, tokens)
            VALUES (NEW.tenant_id, NEW.owner_id, 1)
            ON CONFLICT (tenant_id, owner_id) DO UPDATE SET tokens = owner_token_counts.tokens + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tokens_counted AFTER INSERT OR DELETE ON tokens
    FOR EACH ROW EXECUTE FUNCTION count_owner_tokens();

CREATE TRIGGER tokens_counted_on_owner_change AFTER UPDATE OF tenant_id, owner_id ON tokens
    FOR EACH ROW
    WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION count_owner_tokens();
