-- Every keygate token id, and every id a compatible surface's client chose (Instana's
-- `internalId`, per tenant), ever given: rows outlive their token, so neither kind of id is ever
-- given again. An id in an audit history, a log line or a client's configuration then names one
-- token forever, never a later one that reused it.
CREATE TABLE issued_token_ids (
    id  TEXT PRIMARY KEY
);

CREATE TABLE issued_external_ids (
    tenant_id    TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, external_id)
);

INSERT INTO issued_token_ids (id) SELECT id FROM tokens;
INSERT INTO issued_external_ids (tenant_id, external_id)
    SELECT tenant_id, external_id FROM tokens WHERE external_id IS NOT NULL;

-- Earlier versions let a chosen id have the shape of a keygate id (`<prefix>_` and 16 letters or
-- digits; any prefix, as `--prefix` may have changed), even equal one of the same tenant, and
-- looked the chosen id up first, so that id could name the wrong token. Now a path id of that
-- shape always means a keygate id, and such a token goes by its keygate id.
UPDATE tokens SET external_id = NULL
    WHERE external_id ~ '^[a-z][a-z0-9]{1,15}_[0-9A-Za-z]{16}$';

-- A second use of an id is a unique violation here, so the write that tried it fails whole.
CREATE FUNCTION record_issued_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO issued_token_ids (id) VALUES (NEW.id);
        IF NEW.external_id IS NOT NULL THEN
            INSERT INTO issued_external_ids (tenant_id, external_id)
                VALUES (NEW.tenant_id, NEW.external_id);
        END IF;
    ELSE
        IF NEW.id IS DISTINCT FROM OLD.id THEN
            INSERT INTO issued_token_ids (id) VALUES (NEW.id);
        END IF;
        IF NEW.external_id IS NOT NULL AND (NEW.external_id IS DISTINCT FROM OLD.external_id
                                            OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id) THEN
            INSERT INTO issued_external_ids (tenant_id, external_id)
                VALUES (NEW.tenant_id, NEW.external_id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER token_ids_issued AFTER INSERT OR UPDATE OF id, tenant_id, external_id ON tokens
    FOR EACH ROW EXECUTE FUNCTION record_issued_ids();
