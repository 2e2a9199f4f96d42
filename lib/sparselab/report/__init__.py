"""Tables and figures of the studies (pandas + seaborn); heavy imports stay in the submodules."""
