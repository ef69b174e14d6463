-- A tenant always keeps an admin user, so that someone can log in to manage it. The database
-- checks it, in the transaction of the write that would take the last admin away: a check made
-- by the server before writing let two admins demoted or deleted at once (on one node or two)
-- both go. The message is matched by the store (sql.rs) to answer 409.
CREATE FUNCTION keep_an_admin() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One such change per tenant at a time: a second waits here until the first commits, and
    -- under READ COMMITTED the count below then takes a new snapshot that holds the first's
    -- write. NO KEY UPDATE does not conflict with the key-share locks of foreign keys, so
    -- writes of tokens and users in the tenant do not wait for it.
    PERFORM 1 FROM tenants WHERE id = OLD.tenant_id FOR NO KEY UPDATE;
    IF NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = OLD.tenant_id AND role = 'admin') THEN
        RAISE EXCEPTION 'keygate: a tenant keeps an admin' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_keep_an_admin_on_demote AFTER UPDATE OF role ON users
    FOR EACH ROW WHEN (OLD.role = 'admin' AND NEW.role <> 'admin')
    EXECUTE FUNCTION keep_an_admin();

CREATE TRIGGER users_keep_an_admin_on_delete AFTER DELETE ON users
    FOR EACH ROW WHEN (OLD.role = 'admin')
    EXECUTE FUNCTION keep_an_admin();
