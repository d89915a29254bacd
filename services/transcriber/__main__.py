from shared.service import run

from .app import app, settings

run(app, settings, default_port=9101)
