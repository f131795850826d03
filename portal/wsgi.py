import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

application = get_wsgi_application()

# Everything loaded at start (Django, the apps, sqlglot's dialects) moves out of the
# garbage collector's view, so full collections stay short on the request path (the query
# gate's analysis p99 is mostly such collections; see benchmarks/RESULTS.md).
gc.freeze()
