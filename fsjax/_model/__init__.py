"""The models: the reduced mean-field flow under one abstract base, its finite-size
corrections, and the finite network with its teacher."""
