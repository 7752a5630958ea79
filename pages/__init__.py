"""Dash pages of the workbench, one page per module (registered with dash.register_page)."""
