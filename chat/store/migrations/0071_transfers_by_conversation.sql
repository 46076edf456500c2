-- Every end looks up the transfers its end cancelled, to tell their offers' holders
-- (chat/store/transfer.withdrawn_by_end): by conversation, not by scanning them all.
CREATE INDEX transfers_by_conversation ON transfers (conversation_id);
