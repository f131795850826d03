"""The portal over ASGI (uvicorn): Django for everything, and in front of it the session
proxy for ``/s/<id>/...`` (HTTP and WebSocket into a session's workspace,
``scheduler.session_proxy``). ``portal.wsgi`` stays for WSGI servers and the tests."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

django_application = get_asgi_application()

from scheduler.session_proxy import SessionProxy  # noqa: E402 (needs the apps loaded)

application = SessionProxy(django_application)
