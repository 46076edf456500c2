"""Client frames after `hello`, one module per concern (access, conversation, queue, specialist,
supervisor), each registering frame → handler in `registry`; `router` imports them all and
routes a frame to its handler."""
