-- append_batch(): the group commit's function, cheaper per call than append_messages (0009).
--
-- PostgreSQL's CPU per group commit was ~260 us whatever its size (+ ~28 us a message), of
-- which a round trip with a trivial statement is ~45 us: the rest is the function's own
-- statements, each an executor start (relations and indexes opened, expressions compiled)
-- and, in 0009's, a window sort and a DISTINCT to number each conversation's messages, a
-- join back to the batch, and a RETURN QUERY that builds a tuplestore of one row per
-- message which the caller then decodes (four columns a row).
--
-- Here the caller numbers the batch, which it holds anyway: each element's place among its
-- conversation's messages in the batch (p_k: 1, 2, ...) and the distinct conversations with
-- their counts (p_convs, p_n). The clean batch then takes two statements: lock the
-- conversations in id order and check every element in one; bump last_seq and insert every
-- message in the other. It answers with one row: each conversation's last_seq before the
-- batch (ids, bases: an element's seq is base + k) and the batch's one stamp. A batch with a
-- repeat or a refusal goes, as before, through append_messages_each, whose per-element
-- outcomes come back as arrays in element order (outcomes, seqs, sent_ats; ids and bases
-- NULL).
--
-- The numbering is checked, not trusted: every element's k lies in 1..n of its conversation,
-- the counts add up to the batch, and exactly one row is stored per element; with the
-- primary key (conversation_id, seq) that makes each conversation's new seqs exactly
-- base+1 .. base+n (gap-free). A batch that breaks this raises (nothing stored); the
-- appender then stores its elements one by one. append_messages stays for single sends
-- (conversations.append) and for processes of the previous release during an upgrade.
CREATE FUNCTION append_batch(
    p_conversation text[], p_sender text[], p_role text[], p_name text[], p_client_msg_id text[], p_body text[],
    p_k integer[], p_convs text[], p_n integer[],
    OUT ids text[], OUT bases integer[], OUT stamp timestamptz,
    OUT outcomes text[], OUT seqs integer[], OUT sent_ats timestamptz[]
)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    n_stored bigint;
    n_numbered bigint;
BEGIN
    BEGIN
        IF (SELECT count(*) FROM (SELECT 1 FROM conversations c WHERE c.id = ANY (p_convs)
                                   ORDER BY c.id FOR UPDATE) locked) = cardinality(p_convs)
           AND NOT EXISTS (
               SELECT 1 FROM unnest(p_conversation, p_sender, p_role) AS t(conv, sender, role)
                 LEFT JOIN conversations c ON c.id = t.conv
                WHERE c.id IS NULL OR c.state <> 'active'
                   OR t.sender IS DISTINCT FROM (CASE t.role WHEN 'member' THEN c.member_id ELSE c.specialist_id END))
        THEN
            stamp := clock_timestamp();
            WITH bumped AS (
                UPDATE conversations c SET last_seq = c.last_seq + g.n
                  FROM unnest(p_convs, p_n) AS g(conv, n)
                 WHERE c.id = g.conv
                RETURNING c.id, c.last_seq - g.n AS base, g.n
            ), stored AS (
                INSERT INTO messages (conversation_id, seq, sender_id, sender_role, sender_name,
                                      client_msg_id, body, sent_at)
                SELECT t.conv, b.base + t.k, t.sender, t.role, t.name, t.cmid, t.body, stamp
                  FROM unnest(p_conversation, p_sender, p_role, p_name, p_client_msg_id, p_body, p_k)
                       AS t(conv, sender, role, name, cmid, body, k)
                  JOIN bumped b ON b.id = t.conv
                 WHERE t.k BETWEEN 1 AND b.n
                RETURNING 1
            )
            SELECT array_agg(b.id), array_agg(b.base), (SELECT count(*) FROM stored), sum(b.n)
              INTO ids, bases, n_stored, n_numbered
              FROM bumped b;
            IF n_stored <> cardinality(p_conversation) OR n_numbered <> cardinality(p_conversation) THEN
                RAISE EXCEPTION 'append_batch: p_k, p_convs and p_n do not number the batch'
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RETURN;
        END IF;
    EXCEPTION WHEN unique_violation THEN
        ids := NULL;  -- a repeat of a stored message: the careful path tells which
    END;
    ids := NULL;
    bases := NULL;
    SELECT array_agg(e.outcome ORDER BY e.i), array_agg(e.seq ORDER BY e.i), array_agg(e.sent_at ORDER BY e.i)
      INTO outcomes, seqs, sent_ats
      FROM append_messages_each(p_conversation, p_sender, p_role, p_name, p_client_msg_id, p_body) AS e;
END
$$;
