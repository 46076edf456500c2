-- The privacy lifecycle (PRODUCT.md §10, docs/privacy.md).
--
-- `swept_at` marks a conversation (or a request that never became one) whose content is
-- gone: set by the retention sweep, or by a member's erasure, in the same transaction that
-- removed the content, so a row is either whole or swept, never half of each (a sweep
-- killed mid-way leaves whole batches behind it and untouched ones ahead).
--
-- A swept row keeps what statistics need (times, tags, counts, rating, outcome) and loses
-- who and what: member_id and member_alias become '' (no token's `sub` is empty, so ''
-- matches nobody), bodies and notes are deleted or set to NULL.
ALTER TABLE conversations ADD COLUMN swept_at timestamptz;
ALTER TABLE requests ADD COLUMN swept_at timestamptz;

-- The sweep's work list, oldest first; small, since swept rows leave it.
CREATE INDEX conversations_to_sweep ON conversations (ended_at) WHERE state = 'ended' AND swept_at IS NULL;
CREATE INDEX requests_to_sweep ON requests (closed_at) WHERE state = 'cancelled' AND swept_at IS NULL;
-- Erasure and export find a member's rows by their id.
CREATE INDEX requests_by_member ON requests (member_id);
CREATE INDEX feedback_by_member ON feedback (member_id);
