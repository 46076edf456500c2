-- Staff notes (PRODUCT.md §9): written by a conversation's specialist or a supervisor, read
-- by staff only, never by the member (not in `history`, `message`, HTTP or export). A
-- supervisor's `whisper` (§8) is stored here too, with kind 'whisper'. Bodies go with the
-- conversation's content in the retention sweep and erasure (chat/store/privacy.py CONTENT).
CREATE TABLE staff_notes (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    kind            text NOT NULL DEFAULT 'note' CHECK (kind IN ('note', 'whisper', 'transfer')),
    author_role     text NOT NULL CHECK (author_role IN ('specialist', 'supervisor')),
    author_id       text NOT NULL,
    author_name     text NOT NULL,
    body            text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_notes_by_conversation ON staff_notes (conversation_id, at, id);
