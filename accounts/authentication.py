"""API authentication: access JWTs that die with their device session."""

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken

from .services import SESSION_CLAIM, is_session_active


class SessionJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        session_id = token.get(SESSION_CLAIM)
        if not session_id:
            raise InvalidToken("Token is not bound to a session.")
        if not is_session_active(session_id):
            raise AuthenticationFailed("This session has ended. Log in again.", code="session_revoked")
        return token
