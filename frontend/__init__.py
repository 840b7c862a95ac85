"""The dashboard (Dash + plotly): reads the backend API only.

Not built yet — tracked in the dashboard issue. The package exists so the distribution
and the container images have their final layout.
"""
