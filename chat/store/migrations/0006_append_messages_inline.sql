-- append_messages() called append_message() once per element: a set-returning PL/pgSQL
-- call each time (a result store, three RETURN QUERY executor start-ups, and the
-- function's own SET enable_seqscan saved and restored), about half of PostgreSQL's CPU
-- per message in the benchmark. The same steps, inline, with plain SELECT INTO: same
-- row lock (conversations in id order, so concurrent batches cannot deadlock), same
-- checks in the same order (not found, forbidden, duplicate, ended), same stamp after the
-- lock. (append_message() was dropped in 0007: the one-at-a-time path uses this.)
CREATE OR REPLACE FUNCTION append_messages(
    p_conversation text[], p_sender text[], p_role text[], p_name text[], p_client_msg_id text[], p_body text[]
) RETURNS TABLE (i integer, outcome text, seq integer, sent_at timestamptz)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
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
               AND m.client_msg_id = item.cmid;
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
