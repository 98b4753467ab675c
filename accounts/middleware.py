"""Browser sessions are device sessions too: revoke one from anywhere and that browser is logged out."""

from django.conf import settings
from django.contrib.auth import logout

from .services import is_session_active, touch_session
from .utils import client_ip

BROWSER_SESSION_KEY = "device_session_id"


class DeviceSessionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return self.get_response(request)  # no browser session to check (bearer API calls): nothing to look up
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            session_id = request.session.get(BROWSER_SESSION_KEY)
            if session_id is None or not is_session_active(session_id):
                logout(request)
            else:
                touch_session(session_id=session_id, ip=client_ip(request))
        return self.get_response(request)
