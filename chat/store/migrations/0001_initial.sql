-- peerchat schema v1. PostgreSQL is the source of truth (PRODUCT.md §2); every rule that
-- keeps a person safe from a race (one offer per request, one assignment per request,
-- capacity, gap-free seq, idempotent sends) is a constraint or a locked update here,
-- never only a count in some process's memory.

CREATE TABLE specialists (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    tags          text[] NOT NULL DEFAULT '{}',
    languages     text[] NOT NULL DEFAULT '{en}',
    max_chats     integer NOT NULL DEFAULT 3 CHECK (max_chats BETWEEN 1 AND 20),
    status        text NOT NULL DEFAULT 'away' CHECK (status IN ('available', 'away')),
    -- Maintained in the same transaction as the conversation that takes or frees a slot,
    -- with a compare-and-set (`active_chats < max_chats`), so capacity holds across processes.
    active_chats  integer NOT NULL DEFAULT 0 CHECK (active_chats >= 0),
    missed_offers integer NOT NULL DEFAULT 0,
    idle_since    timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE requests (
    id                text PRIMARY KEY,
    member_id         text NOT NULL,
    member_alias      text NOT NULL,
    tags              text[] NOT NULL DEFAULT '{}',
    language          text,
    note              text,
    priority          text NOT NULL DEFAULT 'normal' CHECK (priority IN ('urgent', 'normal')),
    prefer_specialist text,
    -- Specialists who declined or let an offer of this request expire: never offered again.
    avoid             text[] NOT NULL DEFAULT '{}',
    state             text NOT NULL DEFAULT 'waiting'
                      CHECK (state IN ('waiting', 'offered', 'assigned', 'cancelled')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    closed_at         timestamptz
);
-- One open request per member (PRODUCT.md §5).
CREATE UNIQUE INDEX requests_one_open_per_member ON requests (member_id)
    WHERE state IN ('waiting', 'offered');
CREATE INDEX requests_open ON requests (priority, created_at) WHERE state IN ('waiting', 'offered');

CREATE TABLE offers (
    id            text PRIMARY KEY,
    request_id    text NOT NULL REFERENCES requests (id),
    specialist_id text NOT NULL REFERENCES specialists (id),
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'accepted', 'declined', 'expired', 'revoked')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    decided_at    timestamptz
);
-- The same request is never offered to two specialists at once.
CREATE UNIQUE INDEX offers_one_pending_per_request ON offers (request_id) WHERE state = 'pending';
CREATE INDEX offers_pending_by_specialist ON offers (specialist_id) WHERE state = 'pending';

CREATE TABLE conversations (
    id              text PRIMARY KEY,
    -- The same request is never held by two specialists.
    request_id      text UNIQUE REFERENCES requests (id),
    member_id       text NOT NULL,
    member_alias    text NOT NULL,
    specialist_id   text NOT NULL REFERENCES specialists (id),
    specialist_name text NOT NULL,
    tags            text[] NOT NULL DEFAULT '{}',
    state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'ended')),
    last_seq        integer NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    ended_by        text CHECK (ended_by IN ('member', 'specialist', 'supervisor', 'system')),
    end_reason      text
);
CREATE UNIQUE INDEX conversations_one_active_per_member ON conversations (member_id) WHERE state = 'active';
CREATE INDEX conversations_by_specialist ON conversations (specialist_id, state);
CREATE INDEX conversations_recent_by_member ON conversations (member_id, ended_at);

CREATE TABLE messages (
    conversation_id text NOT NULL REFERENCES conversations (id),
    seq             integer NOT NULL CHECK (seq > 0),
    sender_id       text NOT NULL,
    sender_role     text NOT NULL CHECK (sender_role IN ('member', 'specialist')),
    sender_name     text NOT NULL,
    client_msg_id   text NOT NULL,
    body            text NOT NULL,
    sent_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_msg_id)
);

CREATE TABLE feedback (
    conversation_id text PRIMARY KEY REFERENCES conversations (id),
    member_id       text NOT NULL,
    rating          integer NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment         text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Every supervisor read of a transcript, with the reason given. Rows are never updated.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor_id        text NOT NULL,
    actor_role      text NOT NULL,
    actor_name      text NOT NULL,
    action          text NOT NULL,
    conversation_id text,
    reason          text NOT NULL CHECK (length(btrim(reason)) > 0)
);

-- Append one message in one round trip: lock the conversation row (this serialises the
-- senders of one conversation, so seq has no gaps and no duplicates), answer a repeated
-- client_msg_id with the stored message (the first body wins), refuse a non-participant
-- or an ended conversation, else take the next seq. `outcome` says which.
CREATE FUNCTION append_message(
    p_conversation text, p_sender text, p_role text, p_name text, p_client_msg_id text, p_body text
) RETURNS TABLE (outcome text, seq integer, sent_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
    next_seq integer;
    stamp timestamptz := clock_timestamp();
BEGIN
    SELECT conv.state, conv.last_seq, conv.member_id, conv.specialist_id INTO c
      FROM conversations conv WHERE conv.id = p_conversation FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, 0, stamp; RETURN;
    END IF;
    IF p_sender IS DISTINCT FROM (CASE p_role WHEN 'member' THEN c.member_id ELSE c.specialist_id END) THEN
        RETURN QUERY SELECT 'forbidden'::text, 0, stamp; RETURN;
    END IF;
    RETURN QUERY SELECT 'duplicate'::text, m.seq, m.sent_at FROM messages m
      WHERE m.conversation_id = p_conversation AND m.sender_id = p_sender AND m.client_msg_id = p_client_msg_id;
    IF FOUND THEN RETURN; END IF;
    IF c.state <> 'active' THEN
        RETURN QUERY SELECT 'ended'::text, 0, stamp; RETURN;
    END IF;
    next_seq := c.last_seq + 1;
    UPDATE conversations SET last_seq = next_seq WHERE id = p_conversation;
    INSERT INTO messages (conversation_id, seq, sender_id, sender_role, sender_name, client_msg_id, body, sent_at)
    VALUES (p_conversation, next_seq, p_sender, p_role, p_name, p_client_msg_id, p_body, stamp);
    RETURN QUERY SELECT 'stored'::text, next_seq, stamp;
END
$$;
