-- Revocations (PRODUCT.md §4): a supervisor ends a person's access. Every token of that
-- identity (role, sub) issued at or before `revoked_at` is refused from then on, and
-- every socket of it is closed. Rows are only added; each process mirrors the recent ones
-- (chat/revocations.py) and reads new ones by `id` when the Redis doorbell rings.
CREATE TABLE revocations (
    id          bigserial PRIMARY KEY,
    role        text NOT NULL CHECK (role IN ('member', 'specialist', 'supervisor')),
    sub         text NOT NULL CHECK (length(sub) BETWEEN 1 AND 64),
    -- clock_timestamp(), not now(): the moment of the insert itself, so a token minted
    -- later in the same transaction's lifetime is not caught by it.
    revoked_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_by  text NOT NULL,
    reason      text NOT NULL DEFAULT ''
);

-- The mirror loads the revocations young enough to matter (a token lives at most
-- PEERCHAT_MAX_TOKEN_TTL_S) at start.
CREATE INDEX revocations_by_time ON revocations (revoked_at);
