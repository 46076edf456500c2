-- The audit log is append-only in PostgreSQL itself (PRODUCT.md §6), not by convention:
-- UPDATE, DELETE and TRUNCATE of audit_log are refused by a trigger, for every user, a
-- superuser included. The triggers are statement-level (an UPDATE matching no row is
-- refused too) and ENABLE ALWAYS, so `SET session_replication_role = replica`, which
-- silences ordinary triggers, does not silence these. What a superuser can still do
-- (drop the trigger, drop the table) is DDL, visible in PostgreSQL's own log; see
-- docs/security.md, "Audit log".
--
-- Actions other than transcript reads (edit_profile, revoke, ack_alert, ...) name what they
-- acted on in `target` (an id, never content) and may have no reason, so `reason` becomes
-- optional (a blank one is still refused). `detail` holds structured facts about the action,
-- such as a profile's values before and after an edit: never message bodies, notes or
-- member account ids, so erasure and retention never need to touch an audit row.

ALTER TABLE audit_log ALTER COLUMN reason DROP NOT NULL;
ALTER TABLE audit_log ADD COLUMN target text;
ALTER TABLE audit_log ADD COLUMN detail jsonb;

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit rows are written once and never changed or removed';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
