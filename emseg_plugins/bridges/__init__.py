"""Bridges to other frameworks' plugins. Each is a provider (``emseg_plugins.providers`` entry point, see
:mod:`emseg_plugins.registry`) whose framework is imported only when one of its names is wanted."""
