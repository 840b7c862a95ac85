"""The dashboard (Dash + plotly): reads the backend API only.

``create_dashboard(settings)`` builds the app; ``mmlw.frontend.server`` serves it.
"""

from mmlw.frontend.app import create_dashboard

__all__ = ["create_dashboard"]
