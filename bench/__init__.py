"""`make bench`: peerchat under an open-loop load, side by side with a bare relay.

Run `python -m bench` (about 10 minutes) or `python -m bench --quick` (about 2 minutes);
docs/performance.md says what is measured, how, and what the numbers mean.
"""
