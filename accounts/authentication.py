"""API authentication: access JWTs that die with their device session."""

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from .services import SESSION_CLAIM, session_user


class SessionJWTAuthentication(JWTAuthentication):
    """A valid signature is not enough: the token's device session must be live, and its user active.

    Both facts come from the shared cache in one round trip once warm; a revocation overwrites them at once.
    """

    def get_user(self, validated_token):
        session_id = validated_token.get(SESSION_CLAIM)
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        if not session_id or not user_id:
            raise InvalidToken("Token is not bound to a session.")
        user = session_user(session_id=session_id, user_id=user_id)
        if user is None:
            raise AuthenticationFailed("This session has ended. Log in again.", code="session_revoked")
        return user
