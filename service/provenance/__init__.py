"""Provenance on every write: who sent what, assembled by whom, on whose behalf, from which records (issue 23)."""

from service.provenance.sources import SourceRecord, source_lines
from service.provenance.transactions import ProvenanceWriter, Transactions, transactions_for

__all__ = ["ProvenanceWriter", "SourceRecord", "Transactions", "source_lines", "transactions_for"]
