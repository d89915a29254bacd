"""Signing up through a running gateway: how scripts and tests against a local stack get an API key."""

import uuid

import httpx
from pydantic import BaseModel


class SignedUp(BaseModel):
    user_id: str
    email: str
    password: str
    api_key: str


def sign_up(gateway_url: str, *, email: str | None = None, password: str | None = None) -> SignedUp:
    """Register an account (a fresh random one by default) and return its first API key."""
    email = email or f"dev-{uuid.uuid4().hex[:12]}@example.com"
    password = password or uuid.uuid4().hex
    answer = httpx.post(
        f"{gateway_url.rstrip('/')}/v1/users", json={"email": email, "password": password}, timeout=30
    )
    if answer.status_code != httpx.codes.CREATED:
        raise RuntimeError(f"sign-up at {gateway_url} failed: {answer.status_code} {answer.text}")
    body = answer.json()
    return SignedUp(
        user_id=body["user"]["id"], email=email, password=password, api_key=body["api_key"]["key"]
    )
