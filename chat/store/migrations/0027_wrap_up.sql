-- Wrap-up after a conversation ends for a specialist (PRODUCT.md §8): no offers and no
-- claims until `wrap_up_until`; `wrap_up_floor` is the earliest a `wrap_up` may end it
-- (half the urgent length after an urgent or high-risk conversation; else now).
ALTER TABLE specialists
    ADD COLUMN wrap_up_until timestamptz,
    ADD COLUMN wrap_up_floor timestamptz;

-- The specialist's record of how a conversation ended (the `wrap_up` frame).
CREATE TABLE wrap_ups (
    conversation_id text PRIMARY KEY REFERENCES conversations (id),
    specialist_id   text NOT NULL,
    outcome         text NOT NULL,
    risk_level      text NOT NULL CHECK (risk_level IN ('none', 'low', 'medium', 'high')),
    note            text,
    at              timestamptz NOT NULL DEFAULT now()
);
