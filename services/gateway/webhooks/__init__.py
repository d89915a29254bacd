"""Webhooks (Standard Webhooks): signing, target checks, payloads, retry schedule and the dispatcher."""
