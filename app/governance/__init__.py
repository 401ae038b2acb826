"""Governance read from the audit chain: the inventory of identities, the audit-mode report."""
