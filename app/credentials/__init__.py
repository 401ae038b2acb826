"""Just-in-time credentials: grant keys, signing, delegation and revocation."""
