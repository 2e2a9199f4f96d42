"""Dynamic sparse training (Mostafa & Wang, ICML 2019): DSR, SET, DeepR, static and tied sparse
parameterisations, and the gradual-pruning baseline."""
