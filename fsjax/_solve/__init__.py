"""Integrating the reduced dynamics: one diffeqsolve wrapper, solver settings, linear algebra."""
