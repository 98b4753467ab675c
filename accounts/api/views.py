"""Accounts API: registration, tokens, verification, passwords, profile and device sessions."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.middleware import BROWSER_SESSION_KEY
from accounts.models import DeviceSession
from accounts.services import SESSION_CLAIM
from accounts.tokens import user_for_password_reset
from accounts.utils import client_of, site_url
from cryptodesk.api.throttling import ScopedThrottle

from .serializers import (
    ChangePasswordSerializer,
    DetailSerializer,
    DeviceSessionSerializer,
    ForgotPasswordSerializer,
    LoginSerializer,
    ProfileUpdateSerializer,
    RefreshSerializer,
    RegisterSerializer,
    ResetPasswordSerializer,
    TokenPairSerializer,
    UserSerializer,
    VerifyEmailSerializer,
    user_data,
)


def current_session_id(request: Request) -> str | None:
    """The device session this request belongs to: the JWT's, or the browser's."""
    token = request.auth
    if token is not None and hasattr(token, "get"):
        return token.get(SESSION_CLAIM)
    return request.session.get(BROWSER_SESSION_KEY) if hasattr(request, "session") else None


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PublicAuthView(APIView):
    """Endpoints that take credentials in the body: no cookie auth (so no CSRF), a scoped throttle."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "auth"


class RegisterView(PublicAuthView):
    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(RegisterSerializer, request)
        user = services.register_user(**data, base_url=site_url(request))
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenView(PublicAuthView):
    throttle_classes: list = []  # the login throttle counts failures itself

    @extend_schema(request=LoginSerializer, responses={200: TokenPairSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(LoginSerializer, request)
        client = client_of(request)
        user = services.authenticate_login(email=data["email"], password=data["password"], client=client)
        pair = services.start_api_session(user=user, client=client)
        return Response({"access": pair.access, "refresh": pair.refresh})


class TokenRefreshView(PublicAuthView):
    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(RefreshSerializer, request)
        pair = services.rotate_refresh_token(raw_refresh=data["refresh"], client=client_of(request))
        return Response({"access": pair.access, "refresh": pair.refresh})


class LogoutView(PublicAuthView):
    @extend_schema(request=RefreshSerializer, responses={204: None}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(RefreshSerializer, request)
        services.end_api_session(raw_refresh=data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class VerifyEmailView(PublicAuthView):
    @extend_schema(request=VerifyEmailSerializer, responses={200: UserSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(VerifyEmailSerializer, request)
        user = services.verify_email(token=data["token"])
        return Response(UserSerializer(user).data)


class ResendVerificationView(APIView):
    throttle_classes = [ScopedThrottle]
    throttle_scope = "auth"

    @extend_schema(request=None, responses={202: DetailSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        services.resend_verification_email(user=request.user, base_url=site_url(request))
        return Response({"detail": "A new verification email is on its way."}, status=status.HTTP_202_ACCEPTED)


class ForgotPasswordView(PublicAuthView):
    @extend_schema(request=ForgotPasswordSerializer, responses={202: DetailSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(ForgotPasswordSerializer, request)
        services.request_password_reset(email=data["email"], base_url=site_url(request))
        return Response(
            {"detail": "If an account exists for that address, a reset link is on its way."},
            status=status.HTTP_202_ACCEPTED,
        )


class ResetPasswordView(PublicAuthView):
    @extend_schema(request=ResetPasswordSerializer, responses={200: DetailSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(ResetPasswordSerializer, request)
        user = user_for_password_reset(data["uid"], data["token"])
        if user is None:
            raise services.InvalidLink("This reset link is invalid or has expired.", field="token")
        services.reset_password(user=user, new_password=data["new_password"])
        return Response({"detail": "Your password has been reset. Log in with the new one."})


class ChangePasswordView(APIView):
    @extend_schema(request=ChangePasswordSerializer, responses={200: DetailSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(ChangePasswordSerializer, request)
        services.change_password(user=request.user, **data, keep_session_id=current_session_id(request))
        return Response({"detail": "Your password has been changed. Your other sessions were logged out."})


class MeView(APIView):
    @extend_schema(responses={200: UserSerializer}, tags=["me"])
    def get(self, request: Request) -> Response:
        return Response(user_data(request.user))

    @extend_schema(request=ProfileUpdateSerializer, responses={200: UserSerializer}, tags=["me"])
    def patch(self, request: Request) -> Response:
        serializer = ProfileUpdateSerializer(request.user, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.update_profile(user=request.user, base_url=site_url(request), **serializer.validated_data)
        return Response(user_data(user))

    @extend_schema(responses={204: None}, tags=["me"])
    def delete(self, request: Request) -> Response:
        services.delete_account(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionListView(ListAPIView):
    serializer_class = DeviceSessionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return DeviceSession.objects.none()
        return selectors.active_sessions(user=self.request.user)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "current_session_id": current_session_id(self.request)}

    @extend_schema(tags=["me"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        responses={204: None},
        tags=["me"],
        operation_id="me_sessions_revoke_others",
        description="Log out every other session.",
    )
    def delete(self, request: Request) -> Response:
        services.revoke_sessions(user=request.user, reason="revoked by user", keep_id=current_session_id(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionDetailView(APIView):
    @extend_schema(responses={204: None}, tags=["me"], operation_id="me_sessions_revoke")
    def delete(self, request: Request, session_id) -> Response:
        session = get_object_or_404(selectors.active_sessions(user=request.user), pk=session_id)
        services.revoke_sessions(user=request.user, reason="revoked by user", only_id=session.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
