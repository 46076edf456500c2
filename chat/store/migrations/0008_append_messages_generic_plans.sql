-- append_messages() runs four statements per message. PL/pgSQL caches each statement's
-- plan per connection, but PostgreSQL re-plans it for every call with the call's values
-- (a "custom plan") unless the generic plan looks no more expensive, and for these
-- statements it kept choosing custom plans: a profile of PostgreSQL under the benchmark
-- showed node-tree parsing and executor set-up for planning on every message. The
-- statements are all primary-key or unique-key lookups, whose plan does not depend on
-- the values, so the generic plan is always right.
ALTER FUNCTION append_messages(text[], text[], text[], text[], text[], text[])
    SET plan_cache_mode = force_generic_plan;
