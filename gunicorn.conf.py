"""``gunicorn`` (or ``gunicorn 'app:create_app()'``) run in the checkout reads this file: pyea's gunicorn
settings live in ``app/hosting/gunicorn_conf.py`` so that ``pyea serve`` from an installed package uses the same
ones."""

import os
import sys

# Import the app beside this file (the checkout being run), not a stale installed copy.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from app.hosting.gunicorn_conf import *  # noqa: F403
