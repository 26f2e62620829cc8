"""Imports every built-in detector module so that its ``@register`` runs."""
# one import per detector module; keep alphabetical
