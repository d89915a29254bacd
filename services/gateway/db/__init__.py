"""The gateway's reads and changes of the shared tables: jobs, usage, webhooks and rate limits.

Functions take a keyword-only `session`.
"""
