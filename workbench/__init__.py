"""The workbench: reads run folders, explains predictions and serves the Dash app and JSON API."""
