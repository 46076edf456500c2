-- The supervisor dashboard's filters: the audit log by action, by actor or by conversation,
-- newest first (GET /api/audit and /api/audit.csv page back by id), and feedback by week.
CREATE INDEX audit_log_by_action ON audit_log (action, id);
CREATE INDEX audit_log_by_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_by_conversation ON audit_log (conversation_id, id) WHERE conversation_id IS NOT NULL;
CREATE INDEX feedback_by_time ON feedback (created_at);
