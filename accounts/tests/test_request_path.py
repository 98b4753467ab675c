"""The authenticated request path: cheap once warm, and no less strict for it."""

from datetime import UTC, datetime, timedelta
from unittest import mock

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import PASSWORD, api_for

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"
SESSIONS = "/api/v1/me/sessions/"


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def claims_of(access: str) -> dict:
    return jwt.decode(access, options={"verify_signature": False})


def signed(claims: dict, *, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, settings.SECRET_KEY, algorithm=algorithm)


def test_bearer_request_builds_no_token_objects(alice):
    """One `jwt.decode` of the header: simplejwt's token classes are for issuing tokens, not per request."""
    api = api_for(alice)
    from rest_framework_simplejwt.tokens import Token

    with mock.patch.object(Token, "__init__", side_effect=AssertionError("token object built")) as built:
        response = api.get(ME)
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"
    assert built.call_count == 0


def test_request_auth_is_the_token_claims(alice):
    api = api_for(alice)
    rows = api.get(SESSIONS).json()["results"]
    assert [row["current"] for row in rows] == [True]
    assert rows[0]["id"] == str(api.tokens.session.pk)


@pytest.mark.parametrize(
    "change",
    ["no exp", "no jti", "no token type", "HS512 with the right key", "future nbf"],
)
def test_malformed_access_tokens_are_401(alice, change):
    claims = claims_of(api_for(alice).tokens.access)
    tokens = {
        "no exp": signed({k: v for k, v in claims.items() if k != "exp"}),
        "no jti": signed({k: v for k, v in claims.items() if k != "jti"}),
        "no token type": signed({k: v for k, v in claims.items() if k != "token_type"}),
        "HS512 with the right key": signed(claims, algorithm="HS512"),
        "future nbf": signed(dict(claims, nbf=int((timezone.now() + timedelta(minutes=5)).timestamp()))),
    }
    response = bearer(tokens[change]).get(ME)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer  "])
def test_malformed_bearer_header_is_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(ME)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_other_schemes_are_not_bearer_tokens(alice):
    token = api_for(alice).tokens.access
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    response = client.get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_expired_access_token_is_401_even_with_a_live_session(alice):
    claims = claims_of(api_for(alice).tokens.access)
    expired = signed(dict(claims, exp=int((timezone.now() - timedelta(seconds=1)).timestamp())))
    assert bearer(expired).get(ME).status_code == 401


@override_settings(SIMPLE_JWT={**settings.SIMPLE_JWT, "LEEWAY": timedelta(seconds=30)})
def test_leeway_setting_is_honoured(alice):
    claims = claims_of(api_for(alice).tokens.access)
    just_expired = signed(dict(claims, exp=int((timezone.now() - timedelta(seconds=5)).timestamp())))
    assert bearer(just_expired).get(ME).status_code == 200


def test_bearer_request_leaves_the_browser_session_machinery_alone(alice):
    """No session cookie: no browser user to look up, no device session to check for it."""
    api = api_for(alice)
    with mock.patch("django.contrib.auth.middleware.get_user") as session_user_lookup:
        assert api.get(ME).status_code == 200
    assert session_user_lookup.call_count == 0


def test_revoked_browser_session_is_still_logged_out(client, alice):
    assert client.post("/login/", {"email": "alice@example.com", "password": PASSWORD}).status_code == 302
    from accounts.services import revoke_sessions

    revoke_sessions(user=alice, reason="test")
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_csp_header_is_built_once_not_per_response(client):
    from csp.utils import build_policy

    from cryptodesk.api import middleware

    middleware._settings_policy.cache_clear()
    with mock.patch("cryptodesk.api.middleware.build_policy", wraps=build_policy) as built:
        headers = [client.get(path)["Content-Security-Policy"] for path in ("/health", "/login/", "/health")]
    assert built.call_count == 2  # the enforced and the report-only policy, once each
    assert len(set(headers)) == 1
    assert "frame-ancestors 'none'" in headers[0]


@override_settings(CONTENT_SECURITY_POLICY={"DIRECTIVES": {"default-src": ["'none'"]}})
def test_csp_header_follows_the_settings(client):
    assert client.get("/health")["Content-Security-Policy"] == "default-src 'none'"


def test_a_response_that_used_a_nonce_gets_it_in_its_header(rf, settings):
    from csp.constants import NONCE, SELF
    from django.http import HttpResponse

    from cryptodesk.api.middleware import CSPMiddleware

    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"script-src": [SELF, NONCE]}}
    middleware = CSPMiddleware(lambda request: HttpResponse())
    request = rf.get("/")
    middleware.process_request(request)
    nonce = str(request.csp_nonce)
    response = middleware.process_response(request, HttpResponse())
    assert f"script-src 'self' 'nonce-{nonce}'" in response["Content-Security-Policy"].split("; ")


def test_per_view_policies_still_apply(rf):
    from csp.decorators import csp_update
    from django.http import HttpResponse

    from cryptodesk.api.middleware import CSPMiddleware

    view = csp_update({"img-src": ["https://example.com"]})(lambda request: HttpResponse())
    middleware = CSPMiddleware(view)
    request = rf.get("/")
    middleware.process_request(request)
    response = middleware.process_response(request, view(request))
    assert "img-src 'self' data: https://example.com" in response["Content-Security-Policy"]


# --- /me without per-request serializer fields, the user cached as plain values -----------------


def test_me_body_is_byte_for_byte_the_user_serializers(alice):
    from rest_framework.renderers import JSONRenderer

    from accounts.api.serializers import UserSerializer
    from accounts.models import User

    User.objects.filter(pk=alice.pk).update(date_joined=timezone.now().replace(microsecond=0))
    for user in (alice, User.objects.create_user("carol@example.com", PASSWORD, role=User.Role.ANALYST)):
        user.refresh_from_db()
        api = api_for(user)
        for _ in range(2):  # cold cache, then warm
            response = api.get(ME)
            assert response.content == JSONRenderer().render(UserSerializer(user).data)


def test_me_copies_no_serializer_fields_per_request(alice):
    from accounts.api.serializers import UserSerializer

    api = api_for(alice)
    assert api.get(ME).status_code == 200
    with mock.patch.object(UserSerializer, "get_fields", side_effect=AssertionError("fields built")) as built:
        assert api.get(ME).json()["email"] == "alice@example.com"
    assert built.call_count == 0


def test_the_cached_user_is_plain_values_not_a_pickled_model(alice):
    from django.core.cache import cache

    api = api_for(alice)
    assert api.get(ME).status_code == 200
    cached = cache.get(f"user:{alice.pk}")
    assert isinstance(cached, dict)
    assert cached["email"] == "alice@example.com"
    assert cached["password"] == alice.password  # request.user checks passwords (password change)
    assert {type(value).__module__ for value in cached.values()} <= {"builtins", "datetime"}


def test_the_user_rebuilt_from_the_cache_needs_no_query_and_saves_as_an_update(alice, django_assert_num_queries):
    from accounts.models import User
    from accounts.services import session_user

    session_id = api_for(alice).tokens.session.pk
    assert session_user(session_id=session_id, user_id=alice.pk) is not None  # warms the cache
    with django_assert_num_queries(0):
        user = session_user(session_id=session_id, user_id=alice.pk)
    assert isinstance(user, User)
    assert (user.pk, user.email, user.date_joined, user._state.adding) == (
        alice.pk,
        alice.email,
        alice.date_joined,
        False,
    )
    user.display_name = "Saved from the cache"
    user.save()
    assert User.objects.count() == 1
    assert User.objects.get().display_name == "Saved from the cache"


@pytest.mark.parametrize("stale", ["a pickled model", "missing field", "unknown field", "not a dict"])
def test_a_cached_user_of_another_shape_is_read_again(alice, stale):
    from django.core.cache import cache

    api = api_for(alice)
    assert api.get(ME).status_code == 200
    key = f"user:{alice.pk}"
    values = cache.get(key)
    shapes = {
        "a pickled model": alice,
        "missing field": {name: value for name, value in values.items() if name != "role"},
        "unknown field": {**values, "nickname": "x"},
        "not a dict": ["alice@example.com"],
    }
    alice.display_name = "Fresh"
    alice.save()
    cache.set(key, shapes[stale])
    assert api.get(ME).json()["display_name"] == "Fresh"
    assert isinstance(cache.get(key), dict)


def test_a_changed_password_is_never_checked_against_a_cached_hash(alice):
    api = api_for(alice)
    assert api.get(ME).status_code == 200  # warm
    change = "/api/v1/auth/password/change/"
    new = "another-horse-battery-7"
    assert api.post(change, {"old_password": PASSWORD, "new_password": new}, format="json").status_code == 200
    response = api.post(change, {"old_password": new, "new_password": PASSWORD}, format="json")
    assert response.status_code == 200
    again = api.post(change, {"old_password": new, "new_password": "third-horse-battery-5"}, format="json")
    assert again.status_code == 400


def test_other_sessions_die_with_a_password_change_even_when_warm(alice):
    api, other = api_for(alice), api_for(alice)
    assert other.get(ME).status_code == 200  # warm
    change = {"old_password": PASSWORD, "new_password": "another-horse-battery-7"}
    assert api.post("/api/v1/auth/password/change/", change, format="json").status_code == 200
    assert other.get(ME).status_code == 401
    assert api.get(ME).status_code == 200


def test_a_deactivated_user_is_401_at_once_even_when_warm(alice):
    from accounts.services import deactivate_user

    api = api_for(alice)
    assert api.get(ME).status_code == 200  # warm
    deactivate_user(user=alice)
    assert api.get(ME).status_code == 401


def test_a_user_switched_off_behind_the_sessions_back_is_401_once_forgotten(alice):
    """is_active comes from the cached values: a write that forgets the user is seen on the next request."""
    from accounts.models import User

    api = api_for(alice)
    assert api.get(ME).status_code == 200  # warm
    alice.is_active = False
    alice.save()
    assert api.get(ME).status_code == 401
    assert User.objects.get().is_active is False


@pytest.mark.parametrize(
    ("field", "value"), [("role", "analyst"), ("email", "alice.new@example.com"), ("timezone", "Asia/Tokyo")]
)
def test_a_saved_change_is_served_on_the_next_request(alice, field, value):
    api = api_for(alice)
    assert api.get(ME).status_code == 200  # warm
    setattr(alice, field, value)
    alice.save()
    assert api.get(ME).json()[field] == value


def test_a_role_change_reaches_permissions_at_once(alice):
    """The rebuilt user answers role checks from fresh values: analysts may publish, traders may not."""
    from accounts.services import session_user

    session_id = api_for(alice).tokens.session.pk
    assert session_user(session_id=session_id, user_id=alice.pk).can_publish_strategies is False
    alice.role = "analyst"
    alice.save()
    assert session_user(session_id=session_id, user_id=alice.pk).can_publish_strategies is True


# --- content negotiation with one renderer -----------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/*", "application/json; indent=2"])
def test_json_is_served_to_any_accept_json_allows(alice, accept):
    api = api_for(alice)
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = api.get(ME, **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["email"] == "alice@example.com"


def test_an_accept_json_cannot_meet_is_still_406(alice):
    response = api_for(alice).get(ME, HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert response["Content-Type"] == "application/problem+json"


def test_an_unknown_format_is_still_404(alice):
    assert api_for(alice).get(ME, {"format": "xml"}).status_code == 404


def test_negotiation_short_cuts_the_common_accepts(rf):
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request

    from cryptodesk.api.negotiation import SingleRendererNegotiation

    renderer = JSONRenderer()
    negotiation = SingleRendererNegotiation()
    for headers in ({}, {"HTTP_ACCEPT": "*/*"}, {"HTTP_ACCEPT": "application/json"}):
        request = Request(rf.get("/", **headers))
        with mock.patch("rest_framework.negotiation.order_by_precedence", side_effect=AssertionError("parsed")):
            assert negotiation.select_renderer(request, [renderer]) == (renderer, "application/json")


# --- the user throttle ---------------------------------------------------------------------------


@pytest.fixture
def user_rate(monkeypatch):
    from cryptodesk.api.throttling import UserThrottle

    monkeypatch.setitem(UserThrottle.THROTTLE_RATES, "user", "3/min")


def test_the_user_throttle_refuses_past_its_rate(alice, bob, user_rate):
    api = api_for(alice)
    assert [api.get(ME).status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = api.get(ME)
    assert refused["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert api_for(bob).get(ME).status_code == 200  # per user


def test_the_user_throttle_counts_each_request_once(alice, user_rate):
    from django.core.cache import cache

    api = api_for(alice)
    api.get(ME)
    api.get(SESSIONS)
    counts = [value for key, value in _throttle_counters(cache, alice.pk)]
    assert counts == [2]


def _throttle_counters(cache, user_id):
    if hasattr(cache, "keys"):
        keys = cache.keys(f"throttle:user:u{user_id}:*")
    else:
        keys = [key.split(":", 2)[2] for key in cache._cache if f"throttle:user:u{user_id}:" in key]
    return [(key, cache.get(key)) for key in keys]


# --- a token verified once in a process -------------------------------------------------------


@pytest.fixture
def verified_tokens():
    from accounts import authentication

    authentication._verified.clear()
    return authentication._verified


def test_a_token_is_verified_once_per_process(alice, verified_tokens):
    api = api_for(alice)
    with mock.patch("accounts.authentication.jwt.decode", wraps=jwt.decode) as decoded:
        assert [api.get(ME).status_code for _ in range(3)] == [200, 200, 200]
    assert decoded.call_count == 1


def test_a_verified_token_still_expires(alice, verified_tokens):
    from accounts import authentication

    api = api_for(alice)
    assert api.get(ME).status_code == 200
    exp = claims_of(api.tokens.access)["exp"]
    with (
        mock.patch.object(authentication.time, "time", return_value=exp + 1),
        mock.patch("jwt.api_jwt.datetime") as clock,
    ):
        clock.now.return_value = datetime.fromtimestamp(exp + 1, tz=UTC)
        response = api.get(ME)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_verified_token_is_not_valid_before_its_nbf(alice, verified_tokens):
    claims = claims_of(api_for(alice).tokens.access)
    later = int(timezone.now().timestamp()) + 30
    token = signed(dict(claims, nbf=later))
    with mock.patch("jwt.api_jwt.datetime") as clock:
        clock.now.return_value = datetime.fromtimestamp(later, tz=UTC)
        assert bearer(token).get(ME).status_code == 200  # verified at nbf
    assert bearer(token).get(ME).status_code == 401  # and now, before it, it is not


def test_a_verified_token_dies_with_a_new_signing_key(alice, verified_tokens):
    api = api_for(alice)
    assert api.get(ME).status_code == 200
    with override_settings(SIMPLE_JWT={**settings.SIMPLE_JWT, "SIGNING_KEY": "another-key-" + "k" * 40}):
        assert api.get(ME).status_code == 401


def test_a_tampered_copy_of_a_verified_token_is_401(alice, verified_tokens):
    api = api_for(alice)
    assert api.get(ME).status_code == 200
    header, payload, signature = api.tokens.access.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert bearer(f"{header}.{payload}.{flipped}").get(ME).status_code == 401
    assert api.get(ME).status_code == 200


def test_claims_handed_out_are_copies(alice, verified_tokens):
    from accounts.authentication import decode_access_token

    access = api_for(alice).tokens.access
    decode_access_token(access)["sid"] = "someone else's"
    assert decode_access_token(access)["sid"] == claims_of(access)["sid"]


@pytest.mark.skipif(
    not settings.CACHES["default"]["BACKEND"].startswith("django_redis"), reason="counts Redis round trips"
)
def test_a_warm_bearer_request_is_one_redis_round_trip(alice):
    """The session flag, the user and the user throttle's hit travel together."""
    from redis.client import Pipeline, Redis

    api = api_for(alice)
    assert api.get(ME).status_code == 200
    trips: list[str] = []
    real_command, real_execute = Redis.execute_command, Pipeline.execute

    def command(self, *args, **options):
        trips.append(str(args[0]))
        return real_command(self, *args, **options)

    def execute(self, *args, **options):
        trips.append("pipeline: " + " ".join(str(each[0][0]) for each in self.command_stack))
        return real_execute(self, *args, **options)

    with mock.patch.object(Redis, "execute_command", command), mock.patch.object(Pipeline, "execute", execute):
        assert api.get(ME).status_code == 200
    assert trips == ["EVALSHA"]  # one script: the two reads and the counter's hit


@pytest.mark.skipif(
    not settings.CACHES["default"]["BACKEND"].startswith("django_redis"), reason="needs the Redis script cache"
)
def test_a_server_that_forgot_the_script_still_authenticates_and_counts(alice, user_rate):
    """A restarted or flushed Redis has no script under its digest: it is loaded again, the hit still counted."""
    from django_redis import get_redis_connection

    api = api_for(alice)
    assert api.get(ME).status_code == 200
    get_redis_connection("default").script_flush()
    assert [api.get(ME).status_code for _ in range(3)] == [200, 200, 429]  # 3/min, the first counted too
