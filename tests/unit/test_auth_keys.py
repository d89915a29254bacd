from services.auth.keys import introspect


def test_only_the_configured_key_is_active() -> None:
    assert introspect("k-123", static_key="k-123", static_owner="me").owner == "me"
    assert not introspect("k-124", static_key="k-123", static_owner="me").active
    assert not introspect("", static_key="k-123", static_owner="me").active
