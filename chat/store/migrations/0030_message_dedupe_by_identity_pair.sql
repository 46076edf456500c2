-- Identity is the pair (role, sub) (PRODUCT.md §4). A repeated send was recognised by
-- (conversation, sender id, client_msg_id): a member and a specialist whose tokens carry
-- the same `sub` can be in one conversation, and when both used the same client_msg_id
-- (clients number their sends alike) the second was answered as a "duplicate" of the
-- first and never stored. The sender's role is now part of the key, in the unique index
-- the fast path's INSERT relies on and in the careful path's lookup.
CREATE UNIQUE INDEX messages_one_per_client_msg
    ON messages (conversation_id, sender_id, client_msg_id, sender_role);
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_sender_id_client_msg_id_key;

-- append_messages_each (0006, renamed in 0009) with the role in the duplicate lookup;
-- otherwise unchanged, settings included.
CREATE OR REPLACE FUNCTION append_messages_each(
    p_conversation text[], p_sender text[], p_role text[], p_name text[], p_client_msg_id text[], p_body text[]
) RETURNS TABLE (i integer, outcome text, seq integer, sent_at timestamptz)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    item record;
    c record;
    dup record;
    stamp timestamptz;
BEGIN
    FOR item IN
        SELECT t.ord::integer AS ord, t.conv, t.sender, t.role, t.name, t.cmid, t.body
          FROM unnest(p_conversation, p_sender, p_role, p_name, p_client_msg_id, p_body)
               WITH ORDINALITY AS t(conv, sender, role, name, cmid, body, ord)
         ORDER BY t.conv, t.ord
    LOOP
        i := item.ord;
        SELECT conv.state, conv.last_seq, conv.member_id, conv.specialist_id INTO c
          FROM conversations conv WHERE conv.id = item.conv FOR UPDATE;
        stamp := clock_timestamp();
        IF NOT FOUND THEN
            outcome := 'not_found'; seq := 0; sent_at := stamp;
        ELSIF item.sender IS DISTINCT FROM
              (CASE item.role WHEN 'member' THEN c.member_id ELSE c.specialist_id END) THEN
            outcome := 'forbidden'; seq := 0; sent_at := stamp;
        ELSE
            SELECT m.seq, m.sent_at INTO dup FROM messages m
             WHERE m.conversation_id = item.conv AND m.sender_id = item.sender
               AND m.client_msg_id = item.cmid AND m.sender_role = item.role;
            IF FOUND THEN
                outcome := 'duplicate'; seq := dup.seq; sent_at := dup.sent_at;
            ELSIF c.state <> 'active' THEN
                outcome := 'ended'; seq := 0; sent_at := stamp;
            ELSE
                UPDATE conversations SET last_seq = c.last_seq + 1 WHERE id = item.conv;
                INSERT INTO messages (conversation_id, seq, sender_id, sender_role, sender_name,
                                      client_msg_id, body, sent_at)
                VALUES (item.conv, c.last_seq + 1, item.sender, item.role, item.name, item.cmid,
                        item.body, stamp);
                outcome := 'stored'; seq := c.last_seq + 1; sent_at := stamp;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
