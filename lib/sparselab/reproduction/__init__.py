"""The reproduction ledger: published numbers (``published/*.csv``) beside a paper config's regenerated
results. ``ledger`` (the rows and where each study's records are; stdlib, parse time), ``plan`` (what
the rule reads for the config being run; stdlib, parse time), ``compare`` (the table; pandas)."""
