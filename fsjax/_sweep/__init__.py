"""Sweeps: axes, the plan of points and its load balance, the compiled engine, the chunk store."""
