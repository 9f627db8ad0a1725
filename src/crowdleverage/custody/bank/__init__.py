"""The custodian bank side: ISO 20022 files (camt.053 statements in, pain.001 payments out)
and a simulated custodian bank that produces and consumes them."""
