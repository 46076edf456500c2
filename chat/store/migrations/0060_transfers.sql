-- Transfers (PRODUCT.md §9): a conversation handed on by its specialist (or a supervisor)
-- to a named specialist (warm: an offer only they may take) or back to the queue (cold: a
-- request row with `transfer_of`, matched and claimed like any other). The conversation
-- keeps its id and seq and stays 'active' throughout, so the member's messages are stored
-- and acked while it waits; who holds it is always `conversations.specialist_id`, changed
-- only by compare-and-set.

-- While a cold transfer waits for its next specialist, nobody holds it: specialist_id is ''
-- (no token's `sub` may be empty, so no sender can match it in append_messages, and the
-- reconnect grace skips it). The foreign key would refuse '', so it goes; every writer of
-- specialist_id takes it from a locked specialists row.
ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_specialist_id_fkey;

-- A cold transfer's queue entry: the conversation it hands on. Such a request is queued
-- ahead of every normal request of its priority, and its assignment updates that
-- conversation instead of starting one.
ALTER TABLE requests ADD COLUMN transfer_of text REFERENCES conversations (id);

CREATE TABLE transfers (
    id                 text PRIMARY KEY,
    conversation_id    text NOT NULL REFERENCES conversations (id),
    -- Who held the conversation when it was handed on, and who asked (themselves or a supervisor).
    from_specialist_id text NOT NULL,
    from_name          text NOT NULL,
    by_role            text NOT NULL CHECK (by_role IN ('specialist', 'supervisor')),
    by_id              text NOT NULL,
    -- Warm: the specialist offered it; NULL for cold.
    to_specialist_id   text,
    -- Cold: its queue entry.
    request_id         text REFERENCES requests (id),
    -- The handoff note, a staff note of kind 'transfer' (so retention and erasure take it).
    note_id            text REFERENCES staff_notes (id) ON DELETE SET NULL,
    state              text NOT NULL
                       CHECK (state IN ('offered', 'queued', 'accepted', 'declined', 'expired', 'cancelled')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    decided_at         timestamptz,
    -- Who took it (warm or cold).
    taken_by           text
);
-- One transfer at a time per conversation: a second `transfer` meanwhile is refused.
CREATE UNIQUE INDEX transfers_one_open_per_conversation ON transfers (conversation_id)
    WHERE state IN ('offered', 'queued');
-- A pending warm transfer holds one of its target's slots, as an offer does (PRODUCT.md §7).
CREATE INDEX transfers_offered_to ON transfers (to_specialist_id) WHERE state = 'offered';
