"""The complexity ledger: every final checkpoint of every study measured by one rule set."""
