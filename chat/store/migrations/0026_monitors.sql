-- Supervisors watching a live conversation (PRODUCT.md §8 `monitor`). A row per watch, open
-- until `unmonitor`, the socket's end or the conversation's end. `watcher` is the opaque
-- delivery name of the watching socket (never an account id); every process mirrors the
-- open rows to know where a conversation's live frames must also go.
CREATE TABLE monitors (
    id              bigserial PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    watcher         text NOT NULL,
    supervisor_id   text NOT NULL,
    supervisor_name text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
CREATE UNIQUE INDEX monitors_one_open_per_watcher ON monitors (conversation_id, watcher) WHERE ended_at IS NULL;
CREATE INDEX monitors_open ON monitors (conversation_id) WHERE ended_at IS NULL;
