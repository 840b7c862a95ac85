"""The dashboard (Dash + plotly): reads the backend API only.

``create_dashboard(settings)`` builds the app; ``frontend.server`` serves it.
"""

from frontend.app import create_dashboard

__all__ = ["create_dashboard"]
