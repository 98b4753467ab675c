from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("register/", views.register_view, name="register"),
    path("verify-email/", views.verify_email_view, name="verify-email"),
    path("verify-email/resend/", views.resend_verification_view, name="verify-email-resend"),
    path("password/forgot/", views.password_forgot_view, name="password-forgot"),
    path("password/reset/<str:uid>/<str:token>/", views.password_reset_view, name="password-reset"),
    path("settings/", views.settings_view, name="settings"),
    path("settings/profile/", views.settings_profile_view, name="settings-profile"),
    path("settings/password/", views.settings_password_view, name="settings-password"),
    path("settings/sessions/<uuid:session_id>/revoke/", views.revoke_session_view, name="session-revoke"),
    path("settings/sessions/revoke-others/", views.revoke_other_sessions_view, name="sessions-revoke-others"),
]
