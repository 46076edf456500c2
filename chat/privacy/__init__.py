"""The privacy lifecycle (PRODUCT.md §10): who may read a conversation for how long, the
retention sweep, a member's export and erasure. docs/privacy.md is the data map."""
