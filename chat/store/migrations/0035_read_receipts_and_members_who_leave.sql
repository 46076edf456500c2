-- Issue 18 (PRODUCT.md §5 v1.1).
--
-- Read receipts are stored, not only relayed: the last `read` seq of each participant of a
-- conversation, so `welcome` and `history` can say how far the peer has read after a
-- reload. A table of its own rather than columns on `conversations`: a `read` follows
-- nearly every message, and the conversation row is the one every append locks.
CREATE TABLE read_receipts (
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('member', 'specialist')),
    seq             integer NOT NULL CHECK (seq >= 0),
    PRIMARY KEY (conversation_id, role)
);

-- Members who leave: a request cancelled for them (`abandoned`, the member had no live
-- connection for PEERCHAT_MEMBER_GRACE_S) is told on their next connection, once.
ALTER TABLE requests ADD COLUMN cancel_reason text;
ALTER TABLE requests ADD COLUMN reason_untold boolean NOT NULL DEFAULT false;
CREATE INDEX requests_reason_untold ON requests (member_id) WHERE reason_untold;
