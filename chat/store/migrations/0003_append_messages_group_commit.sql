-- Group commit: append many messages (of any conversations) in one round trip and one
-- transaction, so a busy process pays one commit, one WAL flush and one network round trip
-- per batch instead of per message. Each element goes through append_message() with the
-- same row lock, dedupe and authorisation. Conversations are locked in id order, so two
-- concurrent batches cannot deadlock; messages of one conversation keep their order.
-- Returns one row per element, `i` being its 1-based index in the arrays.
CREATE FUNCTION append_messages(
    p_conversation text[], p_sender text[], p_role text[], p_name text[], p_client_msg_id text[], p_body text[]
) RETURNS TABLE (i integer, outcome text, seq integer, sent_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    item record;
    result record;
BEGIN
    FOR item IN
        SELECT t.ord::integer AS ord, t.conv, t.sender, t.role, t.name, t.cmid, t.body
          FROM unnest(p_conversation, p_sender, p_role, p_name, p_client_msg_id, p_body)
               WITH ORDINALITY AS t(conv, sender, role, name, cmid, body, ord)
         ORDER BY t.conv, t.ord
    LOOP
        SELECT * INTO result FROM append_message(item.conv, item.sender, item.role, item.name, item.cmid, item.body);
        i := item.ord;
        outcome := result.outcome;
        seq := result.seq;
        sent_at := result.sent_at;
        RETURN NEXT;
    END LOOP;
END
$$;
