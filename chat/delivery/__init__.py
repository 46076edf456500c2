"""Getting frames to sockets: the send pipeline, ended-conversation fan-out, peer status
notices, and the hub that routes a frame to every device of a user on any process."""
