-- Boundaries (PRODUCT.md §9). A block (by the specialist) or a report (by the member) bars
-- the pair: the member is never offered to, claimable by or transferred to that
-- specialist while the block is in force (until `until` or lifted), and for good after a
-- report. A suspension refuses the member's `request` until `until` (or lifted).
-- member_id names the member: erased with them (chat/store/privacy.py MEMBER_ROWS); the
-- free text (reason, details) is content, swept with the conversation (CONTENT).
CREATE TABLE blocks (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    member_id       text NOT NULL,
    specialist_id   text NOT NULL,
    reason          text,
    at              timestamptz NOT NULL DEFAULT now(),
    until           timestamptz NOT NULL,
    lifted_at       timestamptz,
    lifted_by       text
);
CREATE UNIQUE INDEX blocks_one_per_conversation ON blocks (conversation_id) WHERE lifted_at IS NULL;
CREATE INDEX blocks_by_pair ON blocks (member_id, specialist_id) WHERE lifted_at IS NULL;

CREATE TABLE reports (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL UNIQUE REFERENCES conversations (id),
    member_id       text NOT NULL,
    specialist_id   text NOT NULL,
    reason          text,
    details         text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reports_by_pair ON reports (member_id, specialist_id);

CREATE TABLE suspensions (
    id          text PRIMARY KEY,
    member_id   text NOT NULL,
    until       timestamptz NOT NULL,
    reason      text,
    at          timestamptz NOT NULL DEFAULT now(),
    lifted_at   timestamptz
);
CREATE UNIQUE INDEX suspensions_one_open ON suspensions (member_id) WHERE lifted_at IS NULL;
