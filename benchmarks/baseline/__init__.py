"""The ack benchmark's yardstick: verify the HMAC, insert one row, enqueue one task (docs/performance.md)."""
