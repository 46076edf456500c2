-- Members with no live connection anywhere, and since when (PRODUCT.md §5 v1.1: the
-- PEERCHAT_MEMBER_GRACE_S grace counts from here). Written when a member's last socket
-- closes, or by the member grace sweep when their process died and their lease aged out;
-- removed when they connect again. Rows of members with nothing at stake (no open request,
-- no active conversation) are swept away, so this never grows past the people in line or
-- in a conversation.
CREATE TABLE members_away (
    member_id text PRIMARY KEY,
    since     timestamptz NOT NULL DEFAULT now()
);
