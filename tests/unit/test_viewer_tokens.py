"""The viewer tokens of Voila pages: minting, expiry on a fake clock, the bound, the scope."""

from __future__ import annotations

import pytest

from notebench.server.credentials import (
    PREFIX,
    ViewerTokens,
    scope_refusal,
    token_from_header,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_minted_token_resolves_to_its_user_until_it_expires() -> None:
    clock = FakeClock()
    tokens = ViewerTokens(clock=clock)
    alice, bob = object(), object()
    a = tokens.mint(alice, ttl=60)
    b = tokens.mint(bob, ttl=120)
    assert a.startswith(PREFIX) and b.startswith(PREFIX) and a != b
    assert tokens.resolve(a) is alice and tokens.resolve(b) is bob
    clock.now += 59.9
    assert tokens.resolve(a) is alice
    clock.now += 0.1
    assert tokens.resolve(a) is None  # expired: dropped
    assert tokens.resolve(b) is bob
    assert len(tokens) == 1


def test_unknown_revoked_and_foreign_tokens_resolve_to_nobody() -> None:
    tokens = ViewerTokens(clock=FakeClock())
    token = tokens.mint("alice", ttl=60)
    assert tokens.resolve(PREFIX + "none") is None
    assert tokens.resolve(token[:-1]) is None
    assert tokens.resolve(token[len(PREFIX):]) is None  # the secret without its prefix
    assert tokens.resolve("server-token") is None
    assert tokens.revoke(token) and not tokens.revoke(token)
    assert tokens.resolve(token) is None


def test_the_number_outstanding_is_bounded_expired_ones_first_then_the_oldest() -> None:
    clock = FakeClock()
    tokens = ViewerTokens(clock=clock, limit=3)
    short = tokens.mint("short", ttl=10)
    first = tokens.mint("first", ttl=100)
    second = tokens.mint("second", ttl=100)
    clock.now += 10
    third = tokens.mint("third", ttl=100)  # the expired one makes room
    assert len(tokens) == 3
    assert [tokens.resolve(t) for t in (short, first, second, third)] == [
        None, "first", "second", "third"]
    fourth = tokens.mint("fourth", ttl=100)  # none expired: the oldest goes
    assert len(tokens) == 3
    assert tokens.resolve(first) is None
    assert [tokens.resolve(t) for t in (second, third, fourth)] == ["second", "third", "fourth"]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        ViewerTokens(limit=0)
    with pytest.raises(ValueError):
        ViewerTokens().mint("alice", ttl=0)


def test_only_a_minted_token_in_the_authorization_header_is_taken() -> None:
    token = ViewerTokens().mint("alice", ttl=60)
    assert token_from_header(f"token {token}") == token
    assert token_from_header(f"Bearer {token}") == token
    assert token_from_header("token server-secret") is None
    assert token_from_header(token) is None  # no scheme
    assert token_from_header(None) is None and token_from_header("") is None


def test_without_actions_the_scope_reads_the_core_and_the_read_areas() -> None:
    areas = ("jobs", "monitoring")
    assert scope_refusal("read", "notebench:core", actions=False, read_areas=areas) is None
    assert scope_refusal("read", "notebench:jobs", actions=False, read_areas=areas) is None
    refused = scope_refusal("read", "notebench:assets", actions=False, read_areas=areas)
    assert refused is not None and "voila_read_areas" in refused
    for action, resource in (("write", "notebench:jobs"), ("execute", "kernels")):
        refused = scope_refusal(action, resource, actions=False, read_areas=areas)
        assert refused is not None and "voila_actions" in refused
    # with actions the viewer's own rights (the authorizer) decide
    for action, resource in (("read", "notebench:assets"), ("write", "notebench:jobs"),
                             ("execute", "kernels")):
        assert scope_refusal(action, resource, actions=True, read_areas=areas) is None
