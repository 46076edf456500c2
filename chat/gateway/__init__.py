"""The one owner of a socket's life: handshake and `hello` (endpoint), the connection's
read loop and close (connection), the welcome, the session's bounded outbound queue
(session), the flood guard, and uvicorn's direct-send wire protocol (wsproto)."""
