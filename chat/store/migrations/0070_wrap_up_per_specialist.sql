-- A handed-on conversation (PRODUCT.md §9) ends for each specialist who held it, and each
-- records their own wrap-up (§8): one row per conversation and specialist, so the next
-- holder's outcome neither replaces the first's nor is filed under their id.
-- (Numbered past every lane's range of this session: the review lane had none.)
ALTER TABLE wrap_ups DROP CONSTRAINT wrap_ups_pkey;
ALTER TABLE wrap_ups ADD PRIMARY KEY (conversation_id, specialist_id);
