-- portcullis: instant revocation.
--
-- Install into the app's database (psql -f policies/invalidate.sql). Every
-- change to memberships, apps or accounts then sends NOTIFY portcullis, and
-- every portcullis worker LISTENing on cache.invalidate_channel empties its
-- decision cache at once, instead of waiting for cache.ttl.
--
-- Statement-level triggers: one notification per statement, whatever the
-- number of rows. Safe to run again.

CREATE OR REPLACE FUNCTION portcullis_invalidate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('portcullis', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS portcullis_invalidate ON tenant_account_joins;
CREATE TRIGGER portcullis_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenant_account_joins
    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_invalidate();

DROP TRIGGER IF EXISTS portcullis_invalidate ON apps;
CREATE TRIGGER portcullis_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apps
    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_invalidate();

-- banning an account must take effect at once too
DROP TRIGGER IF EXISTS portcullis_invalidate ON accounts;
CREATE TRIGGER portcullis_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_invalidate();
