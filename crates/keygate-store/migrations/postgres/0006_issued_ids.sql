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

-- Earlier versions let a chosen id equal a keygate id of the same tenant, and looked the chosen
-- id up first, so that id named the wrong token. Such a token goes by its keygate id from now on.
UPDATE tokens SET external_id = NULL
    WHERE external_id IS NOT NULL
      AND EXISTS (SELECT 1 FROM tokens AS t
                  WHERE t.tenant_id = tokens.tenant_id AND t.id = tokens.external_id);

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
