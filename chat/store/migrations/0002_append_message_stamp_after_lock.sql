-- append_message took its timestamp before waiting for the conversation's row lock, so a
-- sender that queued behind another could store seq n+1 with a sent_at earlier than seq n.
-- Stamp after the lock: sent_at now follows seq within a conversation.
CREATE OR REPLACE FUNCTION append_message(
    p_conversation text, p_sender text, p_role text, p_name text, p_client_msg_id text, p_body text
) RETURNS TABLE (outcome text, seq integer, sent_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
    next_seq integer;
    stamp timestamptz;
BEGIN
    SELECT conv.state, conv.last_seq, conv.member_id, conv.specialist_id INTO c
      FROM conversations conv WHERE conv.id = p_conversation FOR UPDATE;
    stamp := clock_timestamp();
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
