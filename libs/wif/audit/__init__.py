"""The audit trail: durable, hash-chained records, and tools to check and read them."""

from wif.audit.log import GENESIS, AuditLog, record_hash

__all__ = ["GENESIS", "AuditLog", "record_hash"]
