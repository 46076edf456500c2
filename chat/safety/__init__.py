"""Safety inside the conversation (PRODUCT.md §8, docs/safety.md): persistent alerts, the
risk check on every member message, flags."""
