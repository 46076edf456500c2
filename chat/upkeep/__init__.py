"""What keeps a process honest over time: presence heartbeats, delivery repair, the
event-loop lag watcher, reconnect grace, and draining at shutdown."""
