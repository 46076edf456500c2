-- Safety inside the conversation (PRODUCT.md §8, issue 15): alerts that survive restarts and
-- stay open until a supervisor acknowledges them, and a conversation's risk mark and flags.

CREATE TABLE alerts (
    id              text PRIMARY KEY,
    kind            text NOT NULL
                    CHECK (kind IN ('urgent_request', 'risk_message', 'flagged', 'long_wait', 'report', 'block')),
    at              timestamptz NOT NULL DEFAULT now(),
    request_id      text,
    conversation_id text,
    tags            text[],
    waited_s        integer CHECK (waited_s >= 0),
    level           text CHECK (level IN ('concern', 'high')),
    -- A flag's note from the specialist, for supervisors only (never logged, never to a member).
    note            text,
    -- The same event raises one alert however many processes see it: e.g. 'urgent_request:<request id>'
    -- or 'risk_message:<conversation id>'. Null for events that may repeat (a second flag).
    once_key        text UNIQUE,
    acked_at        timestamptz,
    acked_by_id     text,
    acked_by_name   text,
    CHECK ((acked_at IS NULL) = (acked_by_id IS NULL))
);
CREATE INDEX alerts_open ON alerts (at, id) WHERE acked_at IS NULL;
CREATE INDEX alerts_by_conversation ON alerts (conversation_id) WHERE conversation_id IS NOT NULL;

-- `risk` is sticky: set once (by a risk phrase in a member message or a `high` flag) and
-- never cleared. `flags` holds the levels of the specialist's flags, oldest first.
ALTER TABLE conversations
    ADD COLUMN risk  text CHECK (risk IN ('high')),
    ADD COLUMN flags text[] NOT NULL DEFAULT '{}';
-- The supervisor's conversation list (GET /api/conversations), newest first, by risk.
CREATE INDEX conversations_by_start ON conversations (started_at DESC, id DESC);
CREATE INDEX conversations_at_risk ON conversations (started_at DESC, id DESC) WHERE risk IS NOT NULL;
