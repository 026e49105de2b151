"""The benchmark settings as they were before the production layout (issue 13): no WhiteNoise
middleware and no check of pooled connections. bench_production's baseline runs on these, so
that the production side is charged with everything the layout added."""

from tests.bench.settings import *  # noqa: F403
from tests.bench.settings import DATABASES, MIDDLEWARE

MIDDLEWARE = [path for path in MIDDLEWARE if path != "whitenoise.middleware.WhiteNoiseMiddleware"]
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
