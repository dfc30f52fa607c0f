"""Analysis of solved trajectories and of the fast-slow structure: diagnostics, critical
manifold and slow flow, sensitivities, scaling laws."""
