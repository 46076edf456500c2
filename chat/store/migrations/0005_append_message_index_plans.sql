-- append_message() runs inside PL/pgSQL, which caches a generic plan per connection after a
-- few calls. On a fresh database the messages table is empty when that happens, a sequential
-- scan is the cheapest plan for the duplicate check, and the connection keeps it while the
-- table grows: each append then reads every message ever stored. The benchmark showed it as
-- one PostgreSQL backend at 100 % of a core near 1 ms per message, in some runs and not
-- others. Every lookup in this function is a point lookup by key: plan it as one.
ALTER FUNCTION append_message(text, text, text, text, text, text) SET enable_seqscan = off;
