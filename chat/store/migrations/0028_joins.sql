-- A supervisor who joins a conversation as a visible third participant (PRODUCT.md §8
-- `join`): may send, their messages carry sender_role 'supervisor'. One open join per
-- supervisor and conversation; `leave` or the end closes it.
ALTER TABLE messages DROP CONSTRAINT messages_sender_role_check;
ALTER TABLE messages ADD CONSTRAINT messages_sender_role_check
    CHECK (sender_role IN ('member', 'specialist', 'supervisor'));

CREATE TABLE conversation_joins (
    id              bigserial PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    supervisor_id   text NOT NULL,
    supervisor_name text NOT NULL,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    left_at         timestamptz
);
CREATE UNIQUE INDEX conversation_joins_one_open
    ON conversation_joins (conversation_id, supervisor_id) WHERE left_at IS NULL;
