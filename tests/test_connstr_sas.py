from __future__ import annotations

import pytest

from workers.delivery.eventhub.connstr import ConnectionStringError, parse_connection_string
from workers.delivery.eventhub.sas import TokenCache, TokenError, make_token, verify_token

KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3OA=="
GOOD = (
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;"
    f"SharedAccessKey={KEY};EntityPath=hub1"
)


def test_parses_a_hub_level_string() -> None:
    c = parse_connection_string(GOOD)
    assert (c.host, c.port, c.key_name, c.hub, c.emulator) == (
        "ns.servicebus.windows.net",
        None,
        "send",
        "hub1",
        False,
    )
    assert c.rest_base == "https://ns.servicebus.windows.net/hub1"


def test_emulator_strings_use_plain_http_to_host_and_port() -> None:
    c = parse_connection_string(
        f"Endpoint=sb://127.0.0.1:5999/;SharedAccessKeyName=k;SharedAccessKey={KEY};"
        "EntityPath=h;UseDevelopmentEmulator=true"
    )
    assert c.rest_base == "http://127.0.0.1:5999/h"


def test_namespace_string_needs_a_hub_name() -> None:
    ns = GOOD.replace(";EntityPath=hub1", "")
    with pytest.raises(ConnectionStringError, match="EntityPath"):
        parse_connection_string(ns)
    assert parse_connection_string(ns, hub="h2").hub == "h2"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Endpoint=sb://x/;SharedAccessKeyName=a", "SharedAccessKey"),
        (f"SharedAccessKeyName=a;SharedAccessKey={KEY};EntityPath=h", "Endpoint"),
        ("garbage", "Name=value"),
        ("Endpoint=sb://x/;" + KEY, "missing"),
        (
            "Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=h;" + KEY[:-2],
            "Name=value",
        ),
        ("", "empty"),
        (GOOD + ";Colour=blue", "unknown"),
    ],
)
def test_errors_name_the_missing_part_and_never_the_key(text: str, needle: str) -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(text)
    assert needle in str(info.value)
    assert KEY not in str(info.value)


def test_the_key_never_shows_in_repr_or_redacted_form() -> None:
    c = parse_connection_string(GOOD)
    assert KEY not in repr(c)
    assert KEY not in c.redacted()
    assert KEY in c.text()


def test_token_verifies_and_names_what_is_wrong() -> None:
    token = make_token("https://ns/hub1", "send", KEY, expiry=2_000_000_000)
    assert verify_token(token, {"send": KEY}, now=1_900_000_000).resource == "https://ns/hub1"
    with pytest.raises(TokenError, match="signature"):
        verify_token(token, {"send": "other"}, now=1_900_000_000)
    with pytest.raises(TokenError, match="expired"):
        verify_token(token, {"send": KEY}, now=2_000_000_001)
    with pytest.raises(TokenError, match="unknown"):
        verify_token(token, {"listen": KEY}, now=1_900_000_000)


def test_token_cache_renews_before_expiry_only() -> None:
    cache = TokenCache("https://ns/hub1", "send", KEY, ttl_s=3600, margin_s=300)
    first = cache.token(now=1_000_000)
    assert cache.token(now=1_000_000 + 3000) == first
    assert cache.token(now=1_000_000 + 3301) != first


# -- side doors (issue 13): nothing pasted into a part comes back, and the hub name is a name ----
@pytest.mark.parametrize(
    "endpoint",
    [
        KEY,
        f"sb://{KEY}",
        "sb://user:secret@ns.servicebus.windows.net/",
        "ftp://ns/",
        "sb://ns.servicebus.windows.net/some/path",
        "sb://ns.servicebus.windows.net/?q=1",
        "sb://ns.servicebus.windows.net:99999/",
        "sb://bad_host!.example/",
    ],
)
def test_a_bad_endpoint_is_refused_without_quoting_it(endpoint: str) -> None:
    text = f"Endpoint={endpoint};SharedAccessKeyName=a;SharedAccessKey={KEY};EntityPath=h"
    with pytest.raises(ConnectionStringError, match="Endpoint") as info:
        parse_connection_string(text)
    assert endpoint not in str(info.value) and KEY not in str(info.value)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    "hub",
    ["h/../other", "h?timeout=1", "h#x", "a b", "-lead", "trail-", ".x", "x" * 257, "h%2fx", "é"],
)
def test_entity_path_must_be_an_event_hub_name(hub: str) -> None:
    text = GOOD.replace("EntityPath=hub1", f"EntityPath={hub}")
    with pytest.raises(ConnectionStringError, match="EntityPath") as info:
        parse_connection_string(text)
    assert hub not in str(info.value)
    with pytest.raises(ConnectionStringError, match="hub name"):
        parse_connection_string(GOOD.replace(";EntityPath=hub1", ""), hub=hub)


def test_a_key_pasted_as_entity_path_is_not_echoed() -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(GOOD.replace("EntityPath=hub1", f"EntityPath={KEY}"))
    assert KEY not in str(info.value)
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(GOOD, hub=KEY)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("hub", ["h", "orders.v2", "a-b_c", "A1", "x" * 256])
def test_event_hub_names_that_azure_allows_are_accepted(hub: str) -> None:
    assert parse_connection_string(GOOD.replace("EntityPath=hub1", f"EntityPath={hub}")).hub == hub
