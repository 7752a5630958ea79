# Marks assets/ as package data so the stylesheet ships with a non-editable install.
