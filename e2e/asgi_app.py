"""The ASGI application with static files served, for browser tests against a real ASGI server (uvicorn --factory)."""

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler


def application() -> ASGIStaticFilesHandler:
    from cryptodesk.asgi import application as desk  # imported here: it sets Django up when uvicorn calls this

    return ASGIStaticFilesHandler(desk)
