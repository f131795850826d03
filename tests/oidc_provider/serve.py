"""Run the test OpenID Connect provider: `python -m tests.oidc_provider.serve REDIRECT_URI`.

Creates its database, a client application (printed), users with groups from the JSON on
stdin, serves on 127.0.0.1 on a free port, and prints one line of JSON with the base URL,
the client id and the client secret once it listens.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import sys
import tempfile
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main() -> None:
    redirect_uri = sys.argv[1]
    users = json.loads(sys.stdin.read() or "[]")
    directory = tempfile.mkdtemp(prefix="oidc-provider-")
    os.environ["OIDC_PROVIDER_DB"] = os.path.join(directory, "provider.sqlite3")
    with socket.socket() as probe:  # the issuer URL names the port, so choose it first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    os.environ["OIDC_PROVIDER_ISSUER"] = f"{base}/o"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    for spec in users:
        user = User.objects.create_user(spec["username"], spec["email"], spec["password"])
        for name in spec.get("groups", []):
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    secret = "test-client-secret-" + os.urandom(8).hex()
    application = Application.objects.create(
        name="karimasu",
        client_id="karimasu-test",
        client_secret=secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    server = make_server(
        "127.0.0.1", port, get_wsgi_application(), server_class=ThreadingServer, handler_class=Quiet
    )
    print(json.dumps({"base": base, "client_id": application.client_id, "secret": secret}))
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
