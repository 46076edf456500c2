-- The delivery repair asks every few seconds for conversations that started recently and
-- are still active; a partial index keeps that a short range scan.
CREATE INDEX conversations_active_by_start ON conversations (started_at) WHERE state = 'active';
