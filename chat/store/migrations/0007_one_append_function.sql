-- Since 0006, append_messages() holds the rules for storing a message (row lock, stamp
-- after the lock, not found / forbidden / duplicate / ended, next seq). append_message()
-- held the same rules a second time for the one-at-a-time path; that path now calls
-- append_messages() with one element, so there is one place to change them.
DROP FUNCTION append_message(text, text, text, text, text, text);
