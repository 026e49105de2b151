#!/usr/bin/env python
"""Django's command line for this project.

Before the settings load it reads var/dev.env when present: `make run` writes it (DEBUG=1), so
that commands typed in another shell of the same checkout see the development settings the
server runs with. Only manage.py reads it; gunicorn, ASGI servers and Celery never do, and a
variable set in the environment always wins (docs/configuration.md, "The development env file").
"""

import os
import sys
from pathlib import Path

DEV_ENV_FILE = Path(__file__).resolve().parent / "var" / "dev.env"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askpro.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from askpro.env import load_env_file

    try:
        load_env_file(DEV_ENV_FILE)
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        if "--traceback" in sys.argv:
            raise
        # A setting the operator must fix: one line naming the variable says it, a traceback hides it.
        sys.exit(f"manage.py: {exc}")


if __name__ == "__main__":
    main()
