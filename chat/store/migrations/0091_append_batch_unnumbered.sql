-- append_batch (0090) again, for two reasons.
--
-- Its check read a stale row. 0090 locked the batch's conversations and checked them (active,
-- the sender a participant) in one statement, so with one snapshot: a batch that waited for
-- the lock of a conversation being ended or handed over then checked the row as it was
-- before, and could store a message after the end, or from the specialist who had just
-- handed it on. (append_messages, 0009, locked in one statement and checked in the next,
-- which in READ COMMITTED reads afresh.) Now the lock is a statement of its own and the
-- check is part of the writing statement, which reads the rows as locked: the UPDATE bumps
-- only active conversations and returns their participants, and the INSERT takes only the
-- elements whose sender is the participant. If anything was left out (a refusal, or a
-- numbering that does not fit the batch), the subtransaction is rolled back and the batch
-- takes append_messages_each, as a repeat does.
--
-- And the numbering may be left out. At the goal load a batch of ~8 messages comes from ~8
-- of 2,000 conversations, so p_k and p_n are all ones and p_convs repeats p_conversation;
-- encoding those three arrays cost the web process more (7-10 us per commit, asyncpg,
-- measured) than decoding one row instead of one per message saved. The caller may pass
-- NULL for all three, meaning "every element in a conversation of its own"; if that is not
-- so, fewer rows are locked than named and the batch takes the careful path.
--
-- (This file was first landed at 08:10 UTC with only the second change; it was replaced in
-- the same session, before any release, as it was the last number of its range.)
CREATE OR REPLACE FUNCTION append_batch(
    p_conversation text[], p_sender text[], p_role text[], p_name text[], p_client_msg_id text[], p_body text[],
    p_k integer[], p_convs text[], p_n integer[],
    OUT ids text[], OUT bases integer[], OUT stamp timestamptz,
    OUT outcomes text[], OUT seqs integer[], OUT sent_ats timestamptz[]
)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    n_locked bigint;
    n_stored bigint;
    n_numbered bigint;
BEGIN
    IF p_convs IS NULL THEN  -- every element in a conversation of its own
        p_convs := p_conversation;
        p_k := array_fill(1, ARRAY[cardinality(p_conversation)]);
        p_n := p_k;
    END IF;
    BEGIN
        -- In id order, so concurrent batches cannot deadlock.
        PERFORM 1 FROM conversations c WHERE c.id = ANY (p_convs) ORDER BY c.id FOR UPDATE;
        GET DIAGNOSTICS n_locked = ROW_COUNT;
        IF n_locked = cardinality(p_convs) THEN
            stamp := clock_timestamp();
            WITH bumped AS (
                UPDATE conversations c SET last_seq = c.last_seq + g.n
                  FROM unnest(p_convs, p_n) AS g(conv, n)
                 WHERE c.id = g.conv AND c.state = 'active'
                RETURNING c.id, c.last_seq - g.n AS base, g.n, c.member_id, c.specialist_id
            ), stored AS (
                INSERT INTO messages (conversation_id, seq, sender_id, sender_role, sender_name,
                                      client_msg_id, body, sent_at)
                SELECT t.conv, b.base + t.k, t.sender, t.role, t.name, t.cmid, t.body, stamp
                  FROM unnest(p_conversation, p_sender, p_role, p_name, p_client_msg_id, p_body, p_k)
                       AS t(conv, sender, role, name, cmid, body, k)
                  JOIN bumped b ON b.id = t.conv
                 WHERE t.k BETWEEN 1 AND b.n
                   AND t.sender IS NOT DISTINCT FROM (CASE t.role WHEN 'member' THEN b.member_id ELSE b.specialist_id END)
                RETURNING 1
            )
            SELECT array_agg(b.id), array_agg(b.base), (SELECT count(*) FROM stored), sum(b.n)
              INTO ids, bases, n_stored, n_numbered
              FROM bumped b;
            IF n_stored = cardinality(p_conversation) AND n_numbered = cardinality(p_conversation) THEN
                RETURN;
            END IF;
            -- Something was left out: undo this subtransaction's writes.
            RAISE EXCEPTION 'append_batch: not a clean batch' USING ERRCODE = 'PB001';
        END IF;
    EXCEPTION WHEN unique_violation OR SQLSTATE 'PB001' THEN
        NULL;  -- a repeat, a refusal or a misfit numbering: the careful path tells which
    END;
    ids := NULL;
    bases := NULL;
    SELECT array_agg(e.outcome ORDER BY e.i), array_agg(e.seq ORDER BY e.i), array_agg(e.sent_at ORDER BY e.i)
      INTO outcomes, seqs, sent_ats
      FROM append_messages_each(p_conversation, p_sender, p_role, p_name, p_client_msg_id, p_body) AS e;
END
$$;
