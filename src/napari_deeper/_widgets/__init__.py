"""Dock widgets: thin Qt front-ends that collect parameters, start workers and make layers."""
