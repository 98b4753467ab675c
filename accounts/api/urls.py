from django.urls import path

from . import views

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="register"),
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("auth/token/refresh/", views.TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/logout/", views.LogoutView.as_view(), name="logout"),
    path("auth/verify-email/", views.VerifyEmailView.as_view(), name="verify-email"),
    path("auth/verify-email/resend/", views.ResendVerificationView.as_view(), name="verify-email-resend"),
    path("auth/password/forgot/", views.ForgotPasswordView.as_view(), name="password-forgot"),
    path("auth/password/reset/", views.ResetPasswordView.as_view(), name="password-reset"),
    path("auth/password/change/", views.ChangePasswordView.as_view(), name="password-change"),
    path("me/", views.MeView.as_view(), name="me"),
    path("me/sessions/", views.SessionListView.as_view(), name="sessions"),
    path("me/sessions/<uuid:session_id>/", views.SessionDetailView.as_view(), name="session-detail"),
]
